"""Causal-LM pieces shared by the judges, their training and the DPO implicit reward.

:func:`target_logps` is the one place that turns a padded batch into summed log-probabilities of the
*target* tokens (a response, a rationale, a verdict): the backbone runs once, and the LM head only at
the positions that predict a target token, so a long prompt costs no vocabulary projection.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from rewardlab.assets import resolve_model_path
from rewardlab.losses.regularizers import token_logps
from rewardlab.models.batching import PaddedBatch, choose_layout, forward_batches, hidden_states
from rewardlab.models.packing import enable_packing
from rewardlab.models.safety import check_checkpoint
from rewardlab.models.scalar import backbone_of, unwrap


def load_causal_lm(path: str | Path, dtype: torch.dtype = torch.float32, trust: bool = False):
    """``(model, tokenizer)`` of a causal LM directory, hub id or alias (``smollm2``), in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_path(path)
    use_safe = check_checkpoint(path, trust)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=trust,
                                                 use_safetensors=use_safe if use_safe else None)
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    enable_packing(model)  # packed rows where they pay (rewardlab.models.batching); generation is unchanged
    return model.eval(), tok


def right_pad(seqs: Sequence[Sequence[int]], starts: Sequence[int], pad_id: int):
    """``input_ids``, ``attention_mask`` and ``target_mask`` ``(n, max length)``: right-padded, with
    1 in ``target_mask`` on tokens ``starts[i]..len(seqs[i])−1`` of row ``i``."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    target = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, p) in enumerate(zip(seqs, starts, strict=True)):
        ids[i, : len(s)] = torch.tensor(list(s))
        mask[i, : len(s)] = 1
        target[i, max(p, 1): len(s)] = 1  # token 0 has no predecessor to be predicted from
    return ids, mask, target


def target_logps(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 target_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed ``log π(x_t | x_<t)`` over the target tokens of each row, and their count, each ``(n,)``
    float32. All inputs ``(n, L)``, right-padded; differentiable (no ``inference_mode`` here)."""
    h = hidden_states(backbone_of(model), PaddedBatch(input_ids, attention_mask)).flat
    rows, cols = target_mask.bool().nonzero(as_tuple=True)
    flat = rows * input_ids.shape[1] + cols
    lp = token_logps(unwrap(model).get_output_embeddings()(h[flat - 1]), input_ids.reshape(-1)[flat])
    n = input_ids.shape[0]
    total = torch.zeros(n, dtype=torch.float32, device=h.device).index_add(0, rows, lp.float())
    count = torch.zeros(n, dtype=torch.float32, device=h.device).index_add(0, rows, torch.ones_like(lp, dtype=torch.float32))
    return total, count


@torch.inference_mode()
def sequence_logps(model: nn.Module, seqs: Sequence[Sequence[int]], starts: Sequence[int], pad_id: int,
                   batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed ``log π`` of tokens ``starts[i]..`` of each sequence and their count, two ``(n,)`` float32
    tensors in input order (no gradients): batches of at most ``batch_size`` sequences of similar length,
    laid out by :func:`rewardlab.models.batching.choose_layout` (token 0 has no predecessor: never scored)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    lm_head = unwrap(model).get_output_embeddings()

    def step(batch, group):
        hidden = hidden_states(backbone_of(model), batch)
        firsts = hidden.starts.tolist()
        tgt, seg = [], []
        for j, i in enumerate(group):
            span = range(max(starts[i], 1), len(seqs[i]))
            tgt += [firsts[j] + t for t in span]
            seg += [j] * len(span)
        tgt_t, seg_t = torch.tensor(tgt, device=device, dtype=torch.long), torch.tensor(seg, device=device, dtype=torch.long)
        lp = token_logps(lm_head(hidden.flat[tgt_t - 1]), batch.input_ids.reshape(-1)[tgt_t]).float()
        total = torch.zeros(len(group), device=device).index_add(0, seg_t, lp)
        count = torch.zeros(len(group), device=device).index_add(0, seg_t, torch.ones_like(lp))
        return torch.stack([total, count], dim=-1)

    try:
        out = forward_batches(seqs, step, device, layout=choose_layout(unwrap(model), device), pad_id=pad_id,
                              batch_tokens=1 << 30, max_batch=batch_size)
    finally:
        model.train(was_training)
    both = torch.stack(out) if out else torch.empty(0, 2)
    return both[:, 0].contiguous(), both[:, 1].contiguous()


class TargetLogps(nn.Module):
    """What the judge Trainer drives: ``forward`` returns summed target log-probabilities and counts."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, target_mask, **_) -> tuple[torch.Tensor, torch.Tensor]:
        return target_logps(self.model, input_ids, attention_mask, target_mask)
