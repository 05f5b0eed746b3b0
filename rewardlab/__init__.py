"""rewardlab: train, evaluate, serve and audit reward models."""

from __future__ import annotations

from rewardlab.types import Conversation, DataReport, Message, PreferencePair, Scorer

__version__ = "0.1.0"
__all__ = ["Conversation", "DataReport", "Message", "PreferencePair", "Scorer", "__version__", "load_scorer"]


def load_scorer(path: str, dtype: str = "float32", trust: bool = False, **kwargs) -> Scorer:
    """Load a trained reward model directory as a :class:`Scorer` (``score``, ``compare``).

    ``dtype`` is ``float32`` or ``bfloat16``; ``trust=True`` allows pickle weights and remote code.
    Other keyword arguments (``device``, ``max_length``, ``batch_tokens``, ``packing``, ``progress``) go to
    :class:`rewardlab.models.scorer.ScalarScorer`. A GRM directory scores with its reward head; an
    ensemble directory (``ensemble.json``) loads every member and also takes ``reduction``
    (``mean``, ``min``, ``mean_minus_std``) and ``lam``, overriding its manifest.
    """
    from rewardlab.models.ensemble import load_any_scorer

    return load_any_scorer(path, dtype=dtype, trust=trust, **kwargs)
