"""Reward-model training on ``transformers.Trainer``.

Trainer brings the loop, optimiser, schedules, gradient accumulation, checkpoint/resume, logging and
multi-process training (``accelerate launch``: DDP, DeepSpeed, FSDP). We own the batch layout
(chosen and rejected sequences of a batch packed into one padding-free row) and the loss, which the
reward-model kind computes from its variant's.
"""

from __future__ import annotations

import torch
from transformers import Trainer

from rewardlab.train.data import LengthGroupedSampler
from rewardlab.variants import Variant


class RewardTrainer(Trainer):
    """A Trainer whose loss is ``loss(module, inputs) -> (chosen rewards, rejected rewards, loss)``: the
    reward-model kind's (:meth:`rewardlab.kinds.Kind.loss` with its variant)."""

    def __init__(self, *args, variant: Variant, loss, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.variant = variant
        self.pair_loss = loss
        # The variant's loss is already a mean over the batch's pairs: the Trainer must only divide it
        # by the accumulation steps, never renormalise it by a token count.
        self.model_accepts_loss_kwargs = False

    def _get_train_sampler(self, train_dataset=None):
        ds = train_dataset if train_dataset is not None else self.train_dataset
        columns = getattr(ds, "column_names", None) or []
        if self.args.train_sampling_strategy != "group_by_length" or "length" not in columns:
            return super()._get_train_sampler(train_dataset)
        a = self.args
        group = a.train_batch_size * a.gradient_accumulation_steps * max(1, a.world_size)
        seed = a.data_seed if a.data_seed is not None else a.seed
        return LengthGroupedSampler(ds["length"], group, seed)

    def _track_num_input_tokens(self, inputs) -> None:
        """Count the real (non-padding) tokens of every training micro-batch, over all processes.

        Always on (whatever ``include_num_input_tokens_seen`` says) and kept in
        ``state.num_input_tokens_seen``, so it survives a resume. A packed row holds no padding; a padded
        batch counts its attention mask; cached features (frozen backbone) have no tokens and count 0.
        """
        mask = inputs.get("attention_mask")
        ids = inputs.get("input_ids")
        if inputs.get("num_tokens") is not None:  # forked pairs: both sides, the shared prompt twice
            n = inputs["num_tokens"]
        elif mask is not None:
            n = mask.sum()
        elif ids is not None:
            n = ids.numel()
        else:
            return
        n = torch.as_tensor(n, device=self.args.device, dtype=torch.int64)
        if self.args.world_size > 1:
            n = self.accelerator.gather(n).sum()
        self.state.num_input_tokens_seen += int(n)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        chosen, rejected, loss = self.pair_loss(model, inputs)
        return (loss, torch.stack([chosen, rejected], dim=-1)) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss, rewards = self.compute_loss(model, inputs, return_outputs=True)
        # Labels are implicit (column 0 is preferred); a placeholder lets compute_metrics run.
        labels = torch.zeros(rewards.shape[0], device=rewards.device)
        return loss.detach(), rewards.detach(), labels


def pair_metrics(eval_pred) -> dict[str, float]:
    """Accuracy (ties count half) and mean reward gap from ``(n, 2)`` chosen/rejected rewards."""
    rewards = torch.as_tensor(eval_pred.predictions)
    gap = rewards[:, 0] - rewards[:, 1]
    acc = ((gap > 0).float() + 0.5 * (gap == 0).float()).mean()
    return {"accuracy": float(acc), "reward_gap": float(gap.mean())}
