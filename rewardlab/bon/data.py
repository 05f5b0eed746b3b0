"""Best-of-n candidate sets: one prompt, N candidate responses, optionally a gold value per candidate.

Two record shapes are read (JSON lines, .gz, or anything :func:`rewardlab.data.iter_records` reads):

- the AlpacaEval best-of-16 shape (``instruction``, ``samples``, ``gold_preference``; see
  :mod:`rewardlab.data.bon`), which ``rewardlab sample`` also writes;
- ``{"prompt": str | messages, "responses": [str | messages, ...], "gold": [number | null, ...]}``
  (``gold`` optional; ``id`` and ``subset`` optional).

Candidates without a gold value cannot be judged, so :func:`labelled_only` keeps the labelled ones
(for the AlpacaEval file: samples 0..10) and drops prompts with fewer than ``min_candidates``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from rewardlab.data.formats import to_messages, to_prompt
from rewardlab.data.readers import DataError, iter_records
from rewardlab.types import Conversation, DataReport


@dataclass(frozen=True)
class BonItem:
    """One prompt with its candidates; ``gold[i]`` is ``None`` where candidate i has no gold value."""

    id: str
    prompt: Conversation
    responses: tuple[Conversation, ...]
    gold: tuple[float | None, ...]
    subset: str | None = None

    def conversation(self, i: int) -> Conversation:
        return [*self.prompt, *self.responses[i]]


def _gold(location: str, values, n: int) -> tuple[float | None, ...]:
    if values is None:
        return (None,) * n
    if not isinstance(values, list) or len(values) != n:
        raise DataError(location, "gold", f"expected a list of {n} numbers or nulls (one per response)")
    out: list[float | None] = []
    for i, g in enumerate(values):
        if g is not None and (isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g)):
            raise DataError(location, f"gold[{i}]", f"expected a finite number or null, got {g!r}")
        out.append(None if g is None else float(g))
    return tuple(out)


def _parse(location: str, rec: dict) -> BonItem:
    if "instruction" in rec and "samples" in rec:  # the AlpacaEval best-of-16 shape
        from rewardlab.data.bon import _parse as parse_bon16

        r = parse_bon16(location, rec)
        return BonItem(id=r.id, prompt=r.prompt, responses=tuple(r.response(i) for i in range(len(r.samples))),
                       gold=r.gold, subset=r.subset)
    for key in ("prompt", "responses"):
        if key not in rec:
            raise DataError(location, key, "missing; expected prompt + responses (+ gold), or "
                            "instruction + samples + gold_preference", reason="missing_field")
    if not isinstance(rec["responses"], list) or not rec["responses"]:
        raise DataError(location, "responses", "expected a non-empty list of responses")
    responses = tuple(to_messages(r, location, f"responses[{i}]", "assistant") for i, r in enumerate(rec["responses"]))
    subset = rec.get("subset")
    return BonItem(id=str(rec.get("id", location)), prompt=to_prompt(rec["prompt"], location),
                   responses=responses, gold=_gold(location, rec.get("gold"), len(responses)),
                   subset=subset if isinstance(subset, str) else None)


def load_bon_items(source: str | Path, limit: int | None = None) -> tuple[list[BonItem], DataReport]:
    """Read candidate sets; the first bad record raises a ``DataError`` naming file, line and field."""
    report = DataReport(source=str(source))
    items: list[BonItem] = []
    for location, rec in iter_records(source):
        if limit is not None and len(items) >= limit:
            break
        report.read += 1
        if not isinstance(rec, dict):
            raise DataError(location, "record", f"expected a JSON object, got {type(rec).__name__}")
        items.append(_parse(location, rec))
        report.kept += 1
    if not items:
        raise DataError(str(source), "records", "no best-of-n records found")
    return items, report


def labelled_only(items: list[BonItem], min_candidates: int = 2) -> tuple[list[BonItem], dict]:
    """Keep only candidates with a gold value; drop prompts left with fewer than ``min_candidates``.

    Returns the kept items and counts (prompts read, kept, dropped for too few labels, candidates kept).
    """
    kept: list[BonItem] = []
    too_few = 0
    for it in items:
        idx = [i for i, g in enumerate(it.gold) if g is not None]
        if len(idx) < min_candidates:
            too_few += 1
            continue
        kept.append(BonItem(id=it.id, prompt=it.prompt, responses=tuple(it.responses[i] for i in idx),
                            gold=tuple(it.gold[i] for i in idx), subset=it.subset))
    stats = {"prompts_read": len(items), "prompts_kept": len(kept), "too_few_labelled": too_few,
             "candidates": sum(len(it.responses) for it in kept)}
    return kept, stats


def equal_size(items: list[BonItem]) -> tuple[list[BonItem], int]:
    """Cut every prompt to the smallest candidate count (first candidates kept) so N is common."""
    n = min(len(it.responses) for it in items)
    return [BonItem(id=it.id, prompt=it.prompt, responses=it.responses[:n], gold=it.gold[:n], subset=it.subset)
            for it in items], n
