"""Reading preference data and conversations: files, directories and Hugging Face datasets.

``load_pairs`` is the entry point for training and evaluation data, ``load_conversations`` for data to
score. Every error is a ``DataError`` naming the file, line (or row) and field; lenient loading counts
bad records by reason in a ``DataReport`` instead of raising.
"""

from rewardlab.data.formats import FORMATS, detect_format, get_format, register_format
from rewardlab.data.load import load_conversations, load_pairs, split_pairs
from rewardlab.data.readers import DROP_REASONS, DataError, iter_records

__all__ = [
    "DROP_REASONS",
    "FORMATS",
    "DataError",
    "detect_format",
    "get_format",
    "iter_records",
    "load_conversations",
    "load_pairs",
    "register_format",
    "split_pairs",
]
