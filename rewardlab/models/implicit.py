"""The DPO implicit reward of a policy as a :class:`rewardlab.types.Scorer`.

A policy trained with DPO defines the reward r(x, y) = β·(log π(y|x) − log π_ref(y|x)) up to a term
of x alone (Rafailov et al. 2023), so it ranks responses to the same prompt like a reward model.
The reference-free variants drop π_ref: ``sum`` is β·log π(y|x), ``mean`` is β·log π(y|x) / |y|
(the per-token average, which does not favour short responses). ``compare`` is σ(r_a − r_b).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from rewardlab.choices import IMPLICIT_REDUCTIONS
from rewardlab.data.encode import ChatEncoder
from rewardlab.data.validate import check_conversation
from rewardlab.models.base import BaseScorer
from rewardlab.models.lm import load_causal_lm, sequence_logps
from rewardlab.types import Conversation

REDUCTIONS = IMPLICIT_REDUCTIONS


def implicit_reward(logps: torch.Tensor, tokens: torch.Tensor, ref_logps: torch.Tensor | None, beta: float,
                    reduction: str = "ratio") -> torch.Tensor:
    """β·(log π − log π_ref) (``ratio``), β·log π (``sum``) or β·log π / tokens (``mean``).

    logps, tokens, ref_logps: summed response log-probabilities and response lengths, each ``(n,)``.
    """
    if reduction == "ratio":
        if ref_logps is None:
            raise ValueError("the 'ratio' implicit reward needs the reference model's log-probabilities")
        return beta * (logps - ref_logps)
    if reduction == "sum":
        return beta * logps
    if reduction == "mean":
        return beta * logps / tokens.clamp(min=1)
    raise ValueError(f"implicit reward reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")


class DPOImplicitScorer(BaseScorer):
    """Scalar rewards from a policy (and its reference, for ``ratio``); ``compare`` = σ(r_a − r_b)."""

    can_trace = True

    def __init__(self, policy: nn.Module, tokenizer, reference: nn.Module | None = None, beta: float = 0.1,
                 reduction: str = "ratio", max_length: int | None = None, batch_size: int = 8) -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f"implicit reward reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
        if reduction == "ratio" and reference is None:
            raise ValueError("the 'ratio' implicit reward needs a reference model (or use 'sum' / 'mean')")
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.policy = policy.eval()
        self.reference = reference.eval() if reference is not None and reduction == "ratio" else None
        self.tokenizer = tokenizer
        self.encoder = ChatEncoder(tokenizer, max_length=max_length)
        self.beta, self.reduction, self.batch_size = beta, reduction, batch_size
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (tokenizer.eos_token_id or 0)

    @classmethod
    def load(cls, policy: str | Path, reference: str | Path | None = None, beta: float = 0.1,
             reduction: str = "ratio", dtype: str = "float32", trust: bool = False,
             device: str | torch.device | None = None, **kwargs) -> DPOImplicitScorer:
        """The implicit reward of ``policy`` against ``reference`` on ``device`` (default: the GPU when
        there is one, else the CPU)."""
        from rewardlab.models.scorer import resolve_device
        from rewardlab.precision import resolve_dtype

        if reduction not in REDUCTIONS:
            raise ValueError(f"implicit reward reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
        if reduction == "ratio" and not reference:
            raise ValueError("the 'ratio' implicit reward needs a reference model (or use 'sum' / 'mean')")
        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        model, tok = load_causal_lm(policy, dtype, trust)
        ref = load_causal_lm(reference, dtype, trust)[0] if reference and reduction == "ratio" else None
        return cls(model.to(device), tok, ref.to(device) if ref is not None else None, beta=beta,
                   reduction=reduction, **kwargs)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the policy computes in (``auto`` resolved when it loaded)."""
        return next(self.policy.parameters()).dtype

    def score(self, convs: Sequence[Conversation]) -> torch.Tensor:
        encs = [self.encoder.encode_conversation(check_conversation(c, f"conversation {i}"), f"conversation {i}")
                for i, c in enumerate(convs)]
        seqs, starts = [e.ids for e in encs], [e.prompt_len for e in encs]
        lp, n = sequence_logps(self.policy, seqs, starts, self.pad_id, self.batch_size)
        ref = sequence_logps(self.reference, seqs, starts, self.pad_id, self.batch_size)[0] if self.reference else None
        return implicit_reward(lp, n, ref, self.beta, self.reduction)

    def compare(self, prompts: Sequence[Conversation], a: Sequence[Conversation],
                b: Sequence[Conversation]) -> torch.Tensor:
        if not len(prompts) == len(a) == len(b):
            raise ValueError("prompts, a and b must have the same length")
        r = self.score([[*p, *x] for p, x in zip(prompts, a, strict=True)]
                       + [[*p, *x] for p, x in zip(prompts, b, strict=True)])
        return torch.sigmoid(r[: len(prompts)] - r[len(prompts):])

    def trace_ids(self, seqs: Sequence[Sequence[int]], prompt_lens: Sequence[int]) -> list:
        """Each response token's share β·(log π − log π_ref) of the implicit reward (β·log π without a
        reference): :func:`rewardlab.models.trace.implicit_token_rewards`."""
        from rewardlab.models.trace import TokenTrace, implicit_token_rewards

        vals = implicit_token_rewards(self.policy, self.reference, self.beta, seqs, prompt_lens, self.pad_id)
        return [TokenTrace(list(s), p, v, "token_reward") for s, p, v in zip(seqs, prompt_lens, vals, strict=True)]
