"""Adapters from raw records to ``PreferencePair``, one per dataset format, kept in a registry.

Each adapter is ``(record, location) -> PreferencePair`` and raises ``DataError`` whose ``reason`` is
a key of ``DROP_REASONS``. All of them check the same things: required fields present, messages
well-formed (``role`` in ``ROLES``, string ``content`` of valid Unicode), responses non-empty, chosen != rejected, and
an optional numeric ``margin``. Optional ``id``/``subset``/``source`` fields are copied; ``id``
defaults to the location and ``source`` to the file or dataset the record came from.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from typing import Any

from rewardlab.data.readers import DataError, origin
from rewardlab.data.validate import check_messages, check_text
from rewardlab.registry import UnknownNameError
from rewardlab.types import Conversation, PreferencePair

FormatFn = Callable[[dict[str, Any], str], PreferencePair]

FORMATS: dict[str, FormatFn] = {}
"""Format name -> adapter; fill it with ``@register_format``."""


_HH_MARKER = re.compile(r"\n\n(Human|Assistant):")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


def register_format(name: str) -> Callable[[FormatFn], FormatFn]:
    """Decorator adding an adapter to ``FORMATS`` under ``name``; a name can be registered once."""

    def add(fn: FormatFn) -> FormatFn:
        if name in FORMATS:
            raise ValueError(f"format {name!r} is already registered (by {FORMATS[name].__qualname__})")
        FORMATS[name] = fn
        return fn

    return add


def get_format(name: str) -> FormatFn:
    """The adapter registered as ``name``; an unknown name raises ``UnknownNameError`` with the close match."""
    if name in FORMATS:
        return FORMATS[name]
    close = difflib.get_close_matches(name, list(FORMATS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UnknownNameError(f"unknown data format {name!r}{hint} (known: {', '.join(sorted(FORMATS))}, or 'auto')")


def detect_format(record: Any, location: str = "record") -> str:
    """Guess the format of one record from its keys.

    ``subset`` and a string ``prompt`` -> ``rewardbench``; any ``prompt`` -> ``explicit``; a string
    ``chosen`` holding ``"\\n\\nHuman:"`` (or starting with ``"Human:"``) -> ``hh``; a ``chosen`` list
    of message objects -> ``implicit``. Anything else raises ``DataError`` (reason ``unknown_format``).
    """
    if not isinstance(record, dict):
        raise DataError(
            location, None, f"expected a JSON object, got {type(record).__name__}", reason="unknown_format"
        )
    chosen = record.get("chosen")
    if "prompt" in record:
        return "rewardbench" if "subset" in record and isinstance(record["prompt"], str) else "explicit"
    if isinstance(chosen, str) and ("\n\nHuman:" in chosen or chosen.startswith("Human:")):
        return "hh"
    if isinstance(chosen, list) and chosen and all(isinstance(m, dict) for m in chosen):
        return "implicit"
    raise DataError(
        location,
        None,
        f"cannot detect the data format from keys {sorted(record)}; known formats: {', '.join(sorted(FORMATS))} "
        "(explicit needs prompt/chosen/rejected, hh and implicit need chosen/rejected)",
        reason="unknown_format",
    )


@register_format("explicit")
def from_explicit(record: dict[str, Any], location: str) -> PreferencePair:
    """``prompt`` (string -> one user turn, or messages), ``chosen``/``rejected`` (string -> one
    assistant turn, or messages); optional ``margin``, ``id``, ``subset``, ``source``. An empty
    prompt string means no prompt."""
    for key in ("prompt", "chosen", "rejected"):
        _require(record, key, location)
    prompt = to_prompt(record["prompt"], location)
    chosen = to_messages(record["chosen"], location, "chosen", "assistant")
    rejected = to_messages(record["rejected"], location, "rejected", "assistant")
    return _finish(record, location, prompt, chosen, rejected)


@register_format("rewardbench")
def from_rewardbench(record: dict[str, Any], location: str) -> PreferencePair:
    """RewardBench rows: ``explicit`` plus a required ``subset`` (``chosen_model`` etc. are ignored)."""
    _require(record, "subset", location)
    return from_explicit(record, location)


@register_format("implicit")
def from_implicit(record: dict[str, Any], location: str) -> PreferencePair:
    """``chosen``/``rejected`` are whole conversations; the prompt is their longest common prefix of
    messages and each response is what follows it (both must be non-empty)."""
    for key in ("chosen", "rejected"):
        _require(record, key, location)
        if not isinstance(record[key], list):
            raise DataError(location, key, f"expected a list of messages, got {type(record[key]).__name__}")
    chosen = to_messages(record["chosen"], location, "chosen", "assistant")
    rejected = to_messages(record["rejected"], location, "rejected", "assistant")
    if chosen == rejected:
        raise DataError(location, "rejected", "identical to 'chosen'", reason="identical")
    k = _common_prefix_len(chosen, rejected)
    for key, conv in (("chosen", chosen), ("rejected", rejected)):
        if k == len(conv):
            raise DataError(
                location,
                key,
                "is a prefix of the other conversation, leaving no response",
                reason="empty_response",
            )
    return _finish(record, location, chosen[:k], chosen[k:], rejected[k:])


@register_format("hh")
def from_hh(record: dict[str, Any], location: str) -> PreferencePair:
    """Anthropic HH-RLHF: ``chosen``/``rejected`` are ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``
    transcripts. The prompt is everything before the final Assistant turn when the two agree; when
    they do not (a few real lines hold two Assistant turns in a row), the prompt is the longest common
    prefix and the responses are the rest, which must be Assistant turns only."""
    convs = {}
    for key in ("chosen", "rejected"):
        _require(record, key, location)
        convs[key] = parse_hh(record[key], location, key)
    chosen, rejected = convs["chosen"], convs["rejected"]
    if chosen[:-1] == rejected[:-1]:
        return _finish(record, location, chosen[:-1], chosen[-1:], rejected[-1:])
    k = _common_prefix_len(chosen, rejected)
    if not all(m["role"] == "assistant" for m in chosen[k:] + rejected[k:]):
        raise DataError(
            location,
            "chosen",
            "chosen and rejected transcripts do not share a prompt "
            f"(they differ from turn {k + 1} on, before the final answers)",
            reason="bad_structure",
        )
    return _finish(record, location, chosen[:k], chosen[k:], rejected[k:])


def parse_hh(text: Any, location: str, field: str) -> Conversation:
    """Split an HH transcript on its ``\\n\\nHuman:``/``\\n\\nAssistant:`` markers into messages.

    It must start with a Human turn and end with a non-empty Assistant turn; contents are stripped.
    """
    if not isinstance(text, str):
        raise DataError(location, field, f"expected an HH transcript string, got {type(text).__name__}")
    check_text(text, location, field)
    if text.startswith("Human:"):
        text = "\n\n" + text
    parts = _HH_MARKER.split(text)
    if parts[0].strip() or len(parts) < 3 or parts[1] != "Human":
        raise DataError(
            location, field, "transcript does not start with a '\\n\\nHuman:' turn", reason="bad_structure"
        )
    conv = [
        {"role": _HH_ROLES[role], "content": body.strip()}
        for role, body in zip(parts[1::2], parts[2::2], strict=True)
    ]
    if conv[-1]["role"] != "assistant":
        raise DataError(
            location, field, "transcript does not end with an Assistant turn", reason="bad_structure"
        )
    if not conv[-1]["content"]:
        raise DataError(location, field, "the final Assistant answer is empty", reason="empty_response")
    return conv


def to_prompt(value: Any, location: str, field: str = "prompt") -> Conversation:
    """A prompt: a string is one user turn (a blank string means no prompt), or a list of messages."""
    if isinstance(value, str) and not value.strip():
        return []
    return to_messages(value, location, field, "user")


def to_messages(value: Any, location: str, field: str, default_role: str) -> Conversation:
    """A string becomes one ``default_role`` message; a list must hold ``{"role", "content"}`` objects.

    Only ``role`` and ``content`` are kept; every text is checked by :mod:`rewardlab.data.validate`.
    Errors name the field, e.g. ``chosen[1].role``.
    """
    if isinstance(value, str):
        return [{"role": default_role, "content": check_text(value, location, field)}]
    if not isinstance(value, list):
        raise DataError(
            location, field, f"expected a non-empty string or list of messages, got {type(value).__name__}"
        )
    return check_messages(value, location, field)


def _require(record: dict[str, Any], key: str, location: str) -> None:
    if record.get(key) is None:
        state = "is null" if key in record else "is missing"
        raise DataError(
            location, key, f"required field {state} (keys present: {sorted(record)})", reason="missing_field"
        )


def _check_response(conv: Conversation, location: str, field: str) -> None:
    if not conv or not conv[-1]["content"].strip():
        raise DataError(location, field, "the response is empty", reason="empty_response")


def _finish(
    record: dict[str, Any], location: str, prompt: Conversation, chosen: Conversation, rejected: Conversation
) -> PreferencePair:
    """Checks shared by every format, then the pair with its optional fields and defaults."""
    _check_response(chosen, location, "chosen")
    _check_response(rejected, location, "rejected")
    if chosen == rejected:
        raise DataError(location, "rejected", "identical to 'chosen'", reason="identical")
    return PreferencePair(
        prompt=prompt,
        chosen=chosen,
        rejected=rejected,
        margin=_margin(record.get("margin"), location),
        id=_text(record.get("id")) or location,
        subset=_text(record.get("subset")),
        source=_text(record.get("source")) or origin(location),
    )


def _margin(value: Any, location: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataError(location, "margin", f"expected a finite number, got {value!r}")
    return float(value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _common_prefix_len(a: Conversation, b: Conversation) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n
