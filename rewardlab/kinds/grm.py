"""The GRM kind (Yang et al. 2024): the base causal LM keeps its LM head beside a reward head, and a
text-generation loss on the shared hidden states (SFT, DPO, or DPO without reference: the variants)
regularises the reward model. Checkpoints load as the causal LM with both heads."""

from __future__ import annotations

from rewardlab.kinds.base import Kind, register_kind
from rewardlab.models.grm import build_grm_model, load_grm_model


@register_kind
class GRMKind(Kind):
    name = "grm"
    load = staticmethod(load_grm_model)

    def build_model(self, base, tok, head, dtype, trust, num_layers=0):
        return build_grm_model(base, tok, head, dtype, trust)

    def training_inputs(self, recipe, variant, model, tok, train_ds, eval_ds, dtype, features=None):
        from rewardlab.train.grm import lm_datasets

        train_ds, eval_ds, collator, module = lm_datasets(recipe, variant, model, train_ds, eval_ds, dtype)
        return train_ds, eval_ds, collator, module, recipe.train.group_by_length

    def loss(self, variant, module, inputs):
        """The module returns rewards, summed response log-probabilities and scored tokens, each ``(2B,)``;
        cached reference log-probabilities come with the batch."""
        from rewardlab.losses import ResponseLogps

        inputs = dict(inputs)
        margin = inputs.pop("margin", None)
        ref = inputs.pop("ref_logps", None)
        rewards, logps, tokens = module(**inputs)
        b = rewards.shape[0] // 2
        lm = ResponseLogps(
            chosen=logps[:b],
            chosen_tokens=tokens[:b],
            rejected=logps[b:] if variant.needs_rejected_logps else None,
            ref_chosen=ref[:b] if ref is not None else None,
            ref_rejected=ref[b:] if ref is not None else None,
        )
        return rewards[:b], rewards[b:], variant.lm_loss(rewards[:b], rewards[b:], lm, margin)
