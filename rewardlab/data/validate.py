"""The checks every input text and conversation goes through, wherever it enters rewardlab.

The data readers (training, evaluation and scoring files), the Python API (``Scorer.score``) and the
server call these same functions, so a conversation the CLI refuses is refused everywhere, with the same
words: ``<location>: field '<field>': <what was expected>`` (a :class:`DataError`, a ``ValueError``).

- Text must be valid Unicode: JSON can spell a lone UTF-16 surrogate (``"\\ud800"``) that no tokenizer
  (and no UTF-8 writer) accepts.
- A message is ``{"role": one of ROLES, "content": str}``.
- A conversation to score ends with a non-empty assistant turn: the judged response.
"""

from __future__ import annotations

from typing import Any

from rewardlab.data.readers import DataError
from rewardlab.types import Conversation, Message

ROLES = ("system", "user", "assistant", "tool")
"""Message roles rewardlab reads (the roles chat templates know)."""


def check_text(value: Any, location: str, field: str) -> str:
    """``value`` if it is a string that is valid Unicode; else a ``DataError`` naming the field.

    The error never repeats the text itself (it is what cannot be written), only where the bad
    character is."""
    if not isinstance(value, str):
        raise DataError(location, field, f"expected a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise DataError(
            location,
            field,
            f"not valid Unicode text: a lone surrogate U+{ord(value[e.start]):04X} at character {e.start} "
            "(a \\ud800-\\udfff escape that is not half of a pair)",
            reason="bad_text",
        ) from None
    return value


def check_message(message: Any, location: str, field: str) -> Message:
    """A ``{"role", "content"}`` object as a plain message (other keys dropped); ``field`` names it,
    e.g. ``chosen[1]``, and its errors name ``chosen[1].role`` / ``chosen[1].content``."""
    if not isinstance(message, dict):
        raise DataError(location, field, f"expected a message object, got {type(message).__name__}")
    for key in ("role", "content"):
        if message.get(key) is None:
            raise DataError(location, field, f"message has no '{key}'")
    role, content = message["role"], message["content"]
    if role not in ROLES:
        raise DataError(location, f"{field}.role", f"expected one of {', '.join(ROLES)}, got {role!r}")
    if not isinstance(content, str):
        raise DataError(location, f"{field}.content", f"expected a string, got {type(content).__name__}")
    check_text(content, location, f"{field}.content")
    return {"role": role, "content": content}


def check_messages(value: Any, location: str, field: str) -> Conversation:
    """A list of messages, each checked by :func:`check_message` (errors name ``field[i]``)."""
    if not isinstance(value, list):
        raise DataError(location, field, f"expected a list of messages, got {type(value).__name__}")
    return [check_message(m, location, f"{field}[{i}]") for i, m in enumerate(value)]


def check_conversation(conv: Any, location: str, field: str = "messages") -> Conversation:
    """A conversation to score: valid messages ending with a non-empty assistant turn (the judged
    response). Returns it as plain messages."""
    messages = check_messages(conv, location, field)
    if not messages or not messages[-1]["content"].strip():
        raise DataError(location, field, "the final response is empty", reason="empty_response")
    if messages[-1]["role"] != "assistant":
        raise DataError(
            location,
            field,
            f"must end with the assistant response to score, but the last message is a {messages[-1]['role']!r} turn",
            reason="bad_structure",
        )
    return messages


def check_rendered(text: Any, location: str, field: str) -> str:
    """An already rendered conversation (chat template applied, OpenRLHF's ``query``): valid,
    non-blank text."""
    check_text(text, location, field)
    if not text.strip():
        raise DataError(location, field, "is empty", reason="empty_response")
    return text
