"""What every Scorer offers by default: the capabilities of :class:`rewardlab.types.Scorer`, declared off.

A scorer class sets the flags of what it can do and implements those methods; callers read the flags
(``can_score_ids``, ``can_trace``, ``can_compare_orders``) and never probe for methods. The defaults
here say "cannot", with an error naming the scorer when a method is called anyway.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rewardlab.types import Conversation, PreferencePair


class ScorerCapabilityError(NotImplementedError):
    """A scorer was asked for something it does not offer."""


class BaseScorer:
    """Defaults of the :class:`rewardlab.types.Scorer` protocol for a scorer that only ``score``s."""

    is_generative = False
    can_score_ids = False
    can_trace = False
    can_compare_orders = False
    encoder = None
    tokenizer = None
    max_positions: int | None = None

    def _cannot(self, what: str) -> ScorerCapabilityError:
        return ScorerCapabilityError(f"{type(self).__name__} does not offer {what}")

    def check_length(self, ids: Sequence[int], where: str) -> None:
        """Raise :class:`rewardlab.data.encode.EncodeError` when ``ids`` exceed what the model reads
        (nothing to check by default)."""

    def score_ids(self, seqs: Sequence[Sequence[int]]) -> torch.Tensor:
        raise self._cannot("scalar rewards of token ids (score_ids)")

    def score_pairs(self, pairs: Sequence[PreferencePair]) -> tuple[torch.Tensor, torch.Tensor]:
        """Rewards of the chosen and rejected sides, each ``(n,)``: ``score`` of each whole conversation."""
        chosen = self.score([p.conversation("chosen") for p in pairs])
        return chosen, self.score([p.conversation("rejected") for p in pairs])

    def trace_ids(self, seqs: Sequence[Sequence[int]], prompt_lens: Sequence[int]) -> list:
        from rewardlab.models.trace import TraceError

        raise TraceError(f"{type(self).__name__} gives no per-token trace (a judge, or an encoder model)")

    def order_probs(self, prompts: Sequence[Conversation], first: Sequence[Conversation],
                    second: Sequence[Conversation]):
        raise self._cannot("per-order probabilities (order_probs)")

    def compare_detailed(self, prompts: Sequence[Conversation], a: Sequence[Conversation],
                         b: Sequence[Conversation]):
        raise self._cannot("per-order probabilities (compare_detailed)")
