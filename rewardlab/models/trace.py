"""Per-token reward traces, computed where the models are.

Scalar reward models read their head at the last token of a sequence. In a causal model the hidden
state at position ``t`` only sees tokens ``0..t``, so reading the head at *every* position of one
forward pass gives the reward of every prefix at once: ``trace[t] == score(ids[: t + 1])`` (up to
float noise), for the price of a single forward instead of one per prefix. Encoders (BERT, MiniLM)
attend both ways and pool the first token, so they have no such trace and raise.

For a DPO policy the per-token implicit reward is ``β·(log π(y_t | x, y_<t) − log π_ref(y_t | x, y_<t))``
(``β·log π`` without a reference); its sum over the response is the sequence-level implicit reward.

Scorers offer these through ``trace_ids`` (:class:`rewardlab.types.Scorer`); :mod:`rewardlab.audit`
consumes the traces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from rewardlab.models.batching import PaddedBatch, forward_batches, hidden_states
from rewardlab.models.scalar import backbone_of, head_of, pooling_of, reads_last_token


class TraceError(ValueError):
    """A scorer that cannot give a per-token trace (encoders, judges)."""


@dataclass
class TokenTrace:
    """One response's per-token values.

    ``ids`` are all token ids (prompt and response); ``values[i]`` belongs to response token
    ``ids[prompt_len + i]``. ``kind`` says what a value is: ``prefix_reward`` (the reward of the
    conversation cut after that token: the last value is the sequence reward) or ``token_reward``
    (one token's additive share: their sum is the sequence reward).
    """

    ids: list[int]
    prompt_len: int
    values: torch.Tensor
    kind: str
    tokens: list[str] | None = None

    @property
    def reward(self) -> float:
        """The sequence-level reward this trace explains."""
        return float(self.values[-1] if self.kind == "prefix_reward" else self.values.sum())

    @property
    def contributions(self) -> torch.Tensor:
        """Each response token's change of the reward, ``(response_len,)`` (what a heatmap colours).
        For prefix rewards the first token's change is measured from the reward at the prompt's end."""
        if self.kind == "token_reward":
            return self.values
        return torch.diff(self.values, prepend=self.values[:1] if self.start is None else self.start[None])

    start: torch.Tensor | None = None
    """Prefix reward at the last prompt token (the baseline of the first contribution), when there is one."""

    def to_dict(self) -> dict:
        return {"kind": self.kind, "prompt_len": self.prompt_len, "reward": self.reward,
                "tokens": self.tokens, "values": self.values.tolist(),
                "contributions": self.contributions.tolist()}


def head_at_every_position(model: nn.Module, batch) -> list[torch.Tensor]:
    """The reward head read at every position of each sequence of a packed or right-padded batch;
    one ``(len_i,)`` float32 tensor per sequence. One forward pass. A mean-pooled head reads, at each
    position, the mean of the hidden states up to it (what it would read were the sequence to end there)."""
    if not reads_last_token(model):
        raise TraceError("per-token traces need a causal (decoder) reward model: this encoder pools the "
                         "whole sequence, so no position sees only its prefix")
    rows = hidden_states(backbone_of(model), batch).rows()
    if pooling_of(model) == "mean":
        rows = [r.cumsum(0) / torch.arange(1, r.shape[0] + 1, device=r.device, dtype=r.dtype).unsqueeze(-1)
                for r in rows]
    head = head_of(model)
    return [head(r).squeeze(-1).float() for r in rows]


@torch.inference_mode()
def prefix_rewards_ids(scorer, seqs: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """For each token sequence, the reward of every prefix ``(len_i,)`` from one forward per batch of
    :attr:`ScalarScorer.batch_tokens` tokens (packed when the scorer packs)."""
    for i, s in enumerate(seqs):
        scorer.check_length(s, f"sequence {i}")
    return forward_batches(seqs, lambda batch, _: head_at_every_position(scorer.model, batch), scorer.device,
                           layout=scorer.layout, pad_id=scorer.pad_id, batch_tokens=scorer.batch_tokens)


@torch.inference_mode()
def rescored_prefixes(scorer, ids: Sequence[int], start: int = 1) -> torch.Tensor:
    """The slow reference: ``score_ids`` of every prefix ``ids[:t + 1]`` for ``t >= start - 1``,
    ``(len(ids) - start + 1,)``. What :func:`prefix_rewards_ids` must equal (tests, benchmark)."""
    return scorer.score_ids([list(ids[: t + 1]) for t in range(start - 1, len(ids))])


@torch.inference_mode()
def implicit_token_rewards(policy: nn.Module, reference: nn.Module | None, beta: float,
                           seqs: Sequence[Sequence[int]], starts: Sequence[int], pad_id: int) -> list[torch.Tensor]:
    """β·(log π − log π_ref) of each response token (β·log π without a reference): one
    ``(len_i − starts_i,)`` tensor per sequence. Token 0 has no predecessor, so it is never scored."""
    from rewardlab.losses.regularizers import token_logps
    from rewardlab.models.lm import right_pad
    from rewardlab.models.scalar import unwrap

    def per_token(model: nn.Module, ids, mask) -> torch.Tensor:
        h = hidden_states(backbone_of(model), PaddedBatch(ids, mask)).flat.reshape(*ids.shape, -1)
        logits = unwrap(model).get_output_embeddings()(h[:, :-1])
        lp = token_logps(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        return lp.reshape(ids.shape[0], -1).float()  # (n, L - 1): log p of token t + 1

    out = []
    for s, p in zip(seqs, starts, strict=True):
        ids, mask, _ = right_pad([s], [p], pad_id)
        lp = per_token(policy, ids, mask)
        if reference is not None:
            lp = lp - per_token(reference, ids, mask)
        first = max(p, 1)
        vals = beta * lp[0, first - 1: len(s) - 1]
        if p == 0:  # the very first token has no predecessor: its share is 0
            vals = torch.cat([vals.new_zeros(1), vals])
        out.append(vals.cpu())
    return out


def prefix_traces(seqs: Sequence[Sequence[int]], prompt_lens: Sequence[int],
                  full: Sequence[torch.Tensor]) -> list[TokenTrace]:
    """:class:`TokenTrace` of prefix rewards from the reward of every prefix of each sequence (``full``)."""
    out = []
    for s, p, r in zip(seqs, prompt_lens, full, strict=True):
        out.append(TokenTrace(list(s), p, r[p:], "prefix_reward", start=r[p - 1] if p > 0 else None))
    return out
