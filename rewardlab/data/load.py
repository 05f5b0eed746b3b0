"""Load preference pairs and conversations to score, with strict or lenient handling of bad records."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from rewardlab import jsonout
from rewardlab.data.formats import FORMATS, FormatFn, detect_format, get_format, to_messages, to_prompt
from rewardlab.data.readers import DataError, iter_records, iter_values, origin
from rewardlab.data.validate import check_conversation
from rewardlab.types import Conversation, DataReport, PreferencePair

T = TypeVar("T")


def load_pairs(
    source: str | Path, format: str = "auto", lenient: bool = False, limit: int | None = None
) -> tuple[list[PreferencePair], DataReport]:
    """Read ``source`` (anything ``iter_records`` takes) into preference pairs.

    ``format`` is a name in ``FORMATS`` or ``"auto"``: then each file (or dataset split) gets the
    format ``detect_format`` finds for its first record that detects *and* converts cleanly, and every
    later record of that file is read with it. Strict mode (the default) raises ``DataError`` at the
    first bad record, naming file, line and field; ``lenient=True`` skips bad records instead and counts
    each under its ``reason`` in the returned report (``read == kept + dropped`` always holds).
    ``limit`` stops reading once that many pairs are kept. A pair's ``id`` defaults to its location and
    its ``source`` to its file or dataset. A source with no records, or none left after lenient
    dropping, is a ``DataError``: nothing can be trained or evaluated on it.
    """
    fixed = None if format == "auto" else get_format(format)  # an unknown name fails before any reading
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    report = DataReport(source=str(source))
    pairs: list[PreferencePair] = []
    locked: dict[str, FormatFn] = {}  # origin -> format detected for it
    if limit == 0:
        return pairs, report
    for location, record in iter_records(source, report if lenient else None, report.skipped):
        report.read += 1
        try:
            pair = _convert(record, location, fixed, locked)
        except DataError as err:
            if not lenient:
                raise
            report.drop(err.reason, location)
            continue
        pairs.append(pair)
        report.kept += 1
        if limit is not None and len(pairs) >= limit:
            break
    report.check()
    require_records(report)
    return pairs, report


def require_records(report: DataReport, what: str = "records") -> None:
    """Raise a ``DataError`` when ``report`` kept nothing: a source with no records, or one whose every
    record was dropped; the message says which, and what was skipped or dropped."""
    if report.kept:
        return
    skipped = f"; skipped {', '.join(report.skipped)}" if report.skipped else ""
    if not report.read:
        raise DataError(report.source, None, f"holds no {what}{skipped}", reason="no_records")
    counts = report.summary().removeprefix(report.source + ": ")
    raise DataError(report.source, None, f"no {what} left after dropping bad ones: {counts}", reason="no_records")


def _convert(
    record: dict[str, Any], location: str, fixed: FormatFn | None, locked: dict[str, FormatFn]
) -> PreferencePair:
    if fixed is not None:
        return fixed(record, location)
    key = origin(location)
    if key in locked:
        return locked[key](record, location)
    adapter = FORMATS[detect_format(record, location)]
    pair = adapter(record, location)
    locked[key] = adapter
    return pair


def split_pairs(
    pairs: Sequence[T], eval_fraction: float | None = None, eval_size: int | None = None, seed: int = 0
) -> tuple[list[T], list[T]]:
    """Split into ``(train, eval)`` by a permutation seeded with ``seed``; both keep the input order.

    Give exactly one of ``eval_fraction`` (in [0, 1]; rounded, but at least one pair when it is
    positive and ``pairs`` is not empty) or ``eval_size`` (a count).
    """
    if (eval_fraction is None) == (eval_size is None):
        raise ValueError("give exactly one of eval_fraction or eval_size")
    n = len(pairs)
    if eval_fraction is not None:
        if not 0.0 <= eval_fraction <= 1.0:
            raise ValueError(f"eval_fraction must be in [0, 1], got {eval_fraction}")
        eval_size = max(round(n * eval_fraction), 1 if eval_fraction > 0 and n else 0)
    assert eval_size is not None
    if not 0 <= eval_size <= n:
        raise ValueError(f"eval_size must be in [0, {n}] for {n} pairs, got {eval_size}")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    held_out = set(order[:eval_size])
    train = [p for i, p in enumerate(pairs) if i not in held_out]
    evals = [p for i, p in enumerate(pairs) if i in held_out]
    return train, evals


def write_pairs_jsonl(pairs: Sequence[PreferencePair], path: str | Path) -> Path:
    """Write pairs in the ``explicit`` format (message lists, margin, id, subset) that ``load_pairs`` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        for p in pairs:
            row = {"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected, "id": p.id}
            if p.margin is not None:
                row["margin"] = p.margin
            if p.subset is not None:
                row["subset"] = p.subset
            fh.write(jsonout.dumps(row) + "\n")
    return path


def load_conversations(source: str | Path) -> list[tuple[str, Conversation]]:
    """Read conversations to score as ``(location, conversation)``; the last turn is the judged one.

    Each record is ``{"messages": [...]}``, ``{"conversation": [...]}``, ``{"prompt": str | messages,
    "response": str | messages}`` or a bare JSON list of messages. Any bad record raises ``DataError``
    naming file, line and field; so do an empty final response and a source with no records.
    """
    report = DataReport(source=str(source))
    values = iter_values(source, None, report.skipped)
    out = [(location, to_conversation(value, location)) for location, value in values]
    report.read = report.kept = len(out)
    require_records(report, "conversations")
    return out


def to_conversation(value: Any, location: str) -> Conversation:
    """One record of ``load_conversations`` as a conversation (see there for the accepted shapes)."""
    if isinstance(value, list):
        field, conv = "messages", to_messages(value, location, "messages", "user")
    elif not isinstance(value, dict):
        raise DataError(
            location, None, f"expected a JSON object or list of messages, got {type(value).__name__}"
        )
    elif "messages" in value or "conversation" in value:
        field = "messages" if "messages" in value else "conversation"
        if not isinstance(value[field], list):
            raise DataError(
                location, field, f"expected a list of messages, got {type(value[field]).__name__}"
            )
        conv = to_messages(value[field], location, field, "user")
    elif "prompt" in value or "response" in value:
        for key in ("prompt", "response"):
            if value.get(key) is None:
                raise DataError(location, key, "required field is missing or null", reason="missing_field")
        field = "response"
        conv = to_prompt(value["prompt"], location) + to_messages(
            value["response"], location, field, "assistant"
        )
    else:
        raise DataError(
            location,
            None,
            f"expected 'messages', 'conversation' or 'prompt' + 'response', found keys {sorted(value)}",
            reason="missing_field",
        )
    return check_conversation(conv, location, field)
