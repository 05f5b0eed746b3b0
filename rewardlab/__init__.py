"""rewardlab: train, evaluate, serve and audit reward models."""

from __future__ import annotations

from rewardlab.types import Conversation, DataReport, Message, PreferencePair, Scorer

__version__ = "0.1.0"
__all__ = ["Conversation", "DataReport", "Message", "PreferencePair", "Scorer", "__version__", "load_scorer"]


def load_scorer(path: str, dtype: str = "float32", trust: bool = False, **kwargs) -> Scorer:
    """Load a reward model as a :class:`Scorer` (``score``, ``compare``): a trained directory (scalar, GRM,
    ensemble or judge), or any causal LM as a judge (``judge="indicator"``) or as a DPO policy's implicit
    reward (``implicit="ratio"``, ``reference=...``). See :func:`rewardlab.models.loader.load_scorer`."""
    from rewardlab.models.loader import load_scorer as load

    return load(path, dtype=dtype, trust=trust, **kwargs)
