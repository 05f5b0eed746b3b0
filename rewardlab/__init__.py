"""rewardlab: train, evaluate, serve and audit reward models."""

from __future__ import annotations

from rewardlab.types import Conversation, DataReport, Message, PreferencePair, Scorer

__version__ = "0.1.0"
__all__ = ["Conversation", "DataReport", "Message", "PreferencePair", "Scorer", "__version__", "load_scorer"]


def load_scorer(path: str, dtype: str = "float32", trust: bool = False, **kwargs) -> Scorer:
    """Load a trained reward model directory as a :class:`Scorer` (``score``, ``compare``).

    ``dtype`` is ``float32`` or ``bfloat16``; ``trust=True`` allows pickle weights and remote code.
    Other keyword arguments (``max_length``, ``batch_tokens``, ``packing``, ``progress``) go to
    :class:`rewardlab.models.scorer.ScalarScorer`.
    """
    from rewardlab.models.scorer import ScalarScorer

    return ScalarScorer.load(path, dtype=dtype, trust=trust, **kwargs)
