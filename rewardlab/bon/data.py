"""Best-of-n candidate sets: one prompt, N candidate responses, optionally a gold value per candidate.

Two record shapes are read, by :func:`rewardlab.data.bon.load_bon_records` (JSON lines, .gz, or anything
:func:`rewardlab.data.iter_records` reads), into one type, :class:`BonItem` (= ``BonRecord``):

- the AlpacaEval best-of-16 shape (``instruction``, ``samples``, ``gold_preference``; see
  :mod:`rewardlab.data.bon`), which ``rewardlab sample`` also writes;
- ``{"prompt": str | messages, "responses": [str | messages, ...], "gold": [number | null, ...]}``
  (``gold`` optional; ``id`` and ``subset`` optional).

Candidates without a gold value cannot be judged, so :func:`labelled_only` keeps the labelled ones
(for the AlpacaEval file: samples 0..10) and drops prompts with fewer than ``min_candidates``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rewardlab.data.bon import BonRecord, load_bon_records
from rewardlab.data.readers import DataError
from rewardlab.types import DataReport

BonItem = BonRecord
"""A prompt with its candidates: the one best-of-n record type (:class:`rewardlab.data.bon.BonRecord`)."""


def load_bon_items(source: str | Path, limit: int | None = None) -> tuple[list[BonItem], DataReport]:
    """Read candidate sets (:func:`rewardlab.data.bon.load_bon_records`, strict: the first bad record raises
    a ``DataError`` naming file, line and field); a file without any record is an error too."""
    items, report = load_bon_records(source, limit=limit)
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
        kept.append(dataclasses.replace(it, responses=tuple(it.responses[i] for i in idx),
                                        gold=tuple(it.gold[i] for i in idx)))
    stats = {"prompts_read": len(items), "prompts_kept": len(kept), "too_few_labelled": too_few,
             "candidates": sum(len(it.responses) for it in kept)}
    return kept, stats


def equal_size(items: list[BonItem]) -> tuple[list[BonItem], int]:
    """Cut every prompt to the smallest candidate count (first candidates kept) so N is common."""
    n = min(len(it.responses) for it in items)
    return [dataclasses.replace(it, responses=it.responses[:n], gold=it.gold[:n]) for it in items], n
