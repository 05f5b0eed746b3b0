"""rewardlab: train, evaluate, serve and audit reward models."""

from rewardlab.types import Conversation, DataReport, Message, PreferencePair, Scorer

__version__ = "0.1.0"
__all__ = ["Conversation", "DataReport", "Message", "PreferencePair", "Scorer", "__version__"]
