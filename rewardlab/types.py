"""Core data types shared by every part of rewardlab.

A *message* is a ``{"role": str, "content": str}`` dict, as in chat templates. A *conversation* is a
list of messages. A preference pair holds the shared prompt (a conversation that ends just before the
judged answer) and two candidate responses, each a non-empty list of messages (usually a single
assistant turn).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

Message = dict[str, str]
Conversation = list[Message]


@dataclass(frozen=True)
class PreferencePair:
    """One human or AI preference: ``chosen`` is preferred over ``rejected`` given ``prompt``."""

    prompt: Conversation
    """The conversation before the judged response (may be empty)."""
    chosen: Conversation
    """The preferred response: one or more messages, normally one assistant turn."""
    rejected: Conversation
    """The dispreferred response, same shape as ``chosen``."""
    margin: float | None = None
    """Optional strength of preference (e.g. rating difference), used by margin losses."""
    id: str = ""
    """Stable identifier; readers fill ``<file>:<line>`` when the data has none."""
    subset: str | None = None
    """Subset or category name (RewardBench ``subset``), for per-subset reports."""
    source: str | None = None
    """Where the pair came from (file or dataset id)."""

    def conversation(self, which: str) -> Conversation:
        """The whole conversation ``prompt + chosen`` or ``prompt + rejected``."""
        if which == "chosen":
            return [*self.prompt, *self.chosen]
        if which == "rejected":
            return [*self.prompt, *self.rejected]
        raise ValueError(f"which must be 'chosen' or 'rejected', got {which!r}")


@dataclass
class DataReport:
    """Counts of what a reader kept and dropped. Invariant: ``read == kept + sum(dropped.values())``."""

    source: str
    read: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    """Up to a few locations (``file:line``) per drop reason, to find them again."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Entries of a data directory that were not read (subdirectories, other file types) -> why."""

    def drop(self, reason: str, where: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < 5:
            ex.append(where)

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    def check(self) -> None:
        if self.read != self.kept + self.n_dropped:
            raise AssertionError(f"report does not add up: read={self.read} kept={self.kept} dropped={self.dropped}")

    def summary(self) -> str:
        text = f"{self.source}: read {self.read}, kept {self.kept}"
        if self.dropped:
            parts = ", ".join(f"{k}: {v} (e.g. {', '.join(self.examples.get(k, [])[:2])})"
                              for k, v in self.dropped.items())
            text += f", dropped {self.n_dropped} [{parts}]"
        if self.skipped:
            text += f", skipped {len(self.skipped)} directory entries not read ({', '.join(self.skipped)})"
        return text

    def to_dict(self) -> dict:
        return {"source": self.source, "read": self.read, "kept": self.kept, "dropped": dict(self.dropped),
                "examples": {k: list(v) for k, v in self.examples.items()}, "skipped": dict(self.skipped)}


@runtime_checkable
class Scorer(Protocol):
    """The one interface every reward-model kind implements.

    Evaluation, best-of-n, audit and the server only talk to this. A scorer declares what it can do
    through the capability flags (``can_*``) and callers read them, never probing for methods or
    switching on a kind's name. :class:`rewardlab.models.base.BaseScorer` holds the defaults: every
    flag off, and each optional method raising an error that names the scorer.
    """

    is_generative: bool
    """True when ``compare`` is native (a judge) and ``score`` may be undefined."""
    dtype: torch.dtype
    """The dtype the model's matmuls compute in: what ``auto`` resolved to, for provenance and ``/health``."""
    encoder: Any
    """The chat encoding (template and truncation, a :class:`rewardlab.data.encode.ChatEncoder`) whose token
    ids ``score_ids`` and ``trace_ids`` take; None for a scorer that takes whole conversations only."""
    tokenizer: Any
    """The tokenizer behind ``encoder`` (None when the encoder carries it alone)."""
    max_positions: int | None
    """The most tokens the model reads (None: no limit known)."""
    can_score_ids: bool
    """``score_ids`` gives a scalar reward per token-id sequence (and ``score_pairs`` uses it)."""
    can_trace: bool
    """``trace_ids`` gives per-token reward traces (:mod:`rewardlab.models.trace`)."""
    can_compare_orders: bool
    """``order_probs`` and ``compare_detailed`` give a judge's probability for each order of presentation."""

    def score(self, convs: Sequence[Conversation]) -> torch.Tensor:
        """Scalar rewards, shape ``(n,)``, for whole conversations (the last turn is the judged response)."""
        ...

    def compare(
        self, prompts: Sequence[Conversation], a: Sequence[Conversation], b: Sequence[Conversation]
    ) -> torch.Tensor:
        """P(a[i] ≻ b[i]) for two responses to ``prompts[i]``, shape ``(n,)``."""
        ...

    def check_length(self, ids: Sequence[int], where: str) -> None:
        """Raise ``EncodeError`` naming ``where`` when ``ids`` are more tokens than the model reads."""
        ...

    def score_ids(self, seqs: Sequence[Sequence[int]]) -> torch.Tensor:
        """Rewards ``(n,)`` of token-id sequences (``can_score_ids``)."""
        ...

    def score_pairs(self, pairs: Sequence[PreferencePair]) -> tuple[torch.Tensor, torch.Tensor]:
        """Rewards of the chosen and of the rejected side of each pair, two ``(n,)`` tensors."""
        ...

    def trace_ids(self, seqs: Sequence[Sequence[int]], prompt_lens: Sequence[int]) -> list:
        """A per-token ``TokenTrace`` of each response (``can_trace``); ``ids[:prompt_lens[i]]`` is the prompt."""
        ...

    def order_probs(self, prompts: Sequence[Conversation], first: Sequence[Conversation],
                    second: Sequence[Conversation]) -> tuple:
        """P(first ≻ second) as presented, ``(n,)``, and the verdict parser's counts (``can_compare_orders``)."""
        ...

    def compare_detailed(self, prompts: Sequence[Conversation], a: Sequence[Conversation],
                         b: Sequence[Conversation]):
        """P(a ≻ b) with each order's probability (``can_compare_orders``)."""
        ...
