"""Best-of-n sample sets with gold judgements, and preference pairs built from them.

A *best-of-n record* is one instruction with ``n`` sampled answers and, for some of them, a gold
preference score (the AlpacaEval best-of-16 set: a GPT-4 judgement of each sample against a reference
answer, a float in [1, 2] where higher is better; ``null`` where no judgement exists). Records feed
best-of-n evaluation directly and, through :func:`gold_gap_pairs`, out-of-distribution preference pairs:
two answers to the same instruction whose gold scores differ clearly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from rewardlab import jsonout
from rewardlab.data.readers import DataError, iter_records
from rewardlab.data.validate import check_text
from rewardlab.types import Conversation, DataReport, PreferencePair


@dataclass(frozen=True)
class BonRecord:
    """One instruction with its sampled answers; ``gold[i]`` is ``None`` where sample ``i`` has no label."""

    id: str
    instruction: str
    samples: tuple[str, ...]
    gold: tuple[float | None, ...]
    subset: str | None = None
    reference: str | None = None

    @property
    def prompt(self) -> Conversation:
        return [{"role": "user", "content": self.instruction}]

    def response(self, i: int) -> Conversation:
        return [{"role": "assistant", "content": self.samples[i]}]

    @property
    def labelled(self) -> list[int]:
        """Indices of samples with a gold score."""
        return [i for i, g in enumerate(self.gold) if g is not None]


def _parse(location: str, rec: dict) -> BonRecord:
    def need(key: str, kind: type, what: str):
        value = rec.get(key)
        if value is None:
            raise DataError(location, key, f"missing; expected {what}", reason="missing_field")
        if not isinstance(value, kind):
            raise DataError(location, key, f"expected {what}, got {type(value).__name__}")
        return value

    instruction = check_text(need("instruction", str, "a string"), location, "instruction")
    samples = need("samples", list, "a list of answer strings")
    gold = need("gold_preference", list, "a list of numbers or nulls, one per sample")
    if not instruction.strip():
        raise DataError(location, "instruction", "is empty", reason="empty_response")
    if not samples:
        raise DataError(location, "samples", "is an empty list", reason="missing_field")
    if len(gold) != len(samples):
        raise DataError(location, "gold_preference",
                        f"has {len(gold)} entries for {len(samples)} samples", reason="bad_structure")
    for i, s in enumerate(samples):
        check_text(s, location, f"samples[{i}]")
    clean: list[float | None] = []
    for i, g in enumerate(gold):
        if g is not None and (isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g)):
            raise DataError(location, f"gold_preference[{i}]", f"expected a finite number or null, got {g!r}")
        clean.append(None if g is None else float(g))
    subset = rec.get("dataset")
    reference = rec.get("reference")
    return BonRecord(id=str(rec.get("id", location)), instruction=instruction, samples=tuple(samples),
                     gold=tuple(clean), subset=subset if isinstance(subset, str) else None,
                     reference=reference if isinstance(reference, str) else None)


def load_bon_records(source: str | Path, lenient: bool = False,
                     report: DataReport | None = None) -> tuple[list[BonRecord], DataReport]:
    """Read best-of-n records (``instruction``, ``samples``, ``gold_preference``; optional ``id``,
    ``dataset``, ``reference``). Strict by default: the first bad record raises a ``DataError`` naming
    file, line and field; ``lenient=True`` drops it and counts it by reason in the report."""
    report = report or DataReport(source=str(source))
    out: list[BonRecord] = []
    for location, rec in iter_records(source, report if lenient else None):
        report.read += 1
        try:
            out.append(_parse(location, rec))
        except DataError as e:
            if not lenient:
                raise
            report.drop(e.reason, location)
            continue
        report.kept += 1
    report.check()
    return out, report


def gold_gap_pairs(records: list[BonRecord], min_gap: float = 0.5, per_instruction: int | None = 1,
                   skip_identical: bool = True) -> tuple[list[PreferencePair], dict]:
    """Preference pairs from two samples of one instruction whose gold scores differ by ``>= min_gap``.

    Rule: among the labelled samples of each instruction, take the pairs (i, j) with
    ``gold[i] - gold[j] >= min_gap``, widest gap first (ties by sample index), at most ``per_instruction``
    of them, never reusing a sample; ``per_instruction=None`` takes every such pair (a sample then sits
    in several pairs). The higher-scored sample is ``chosen`` and ``margin`` is the gap.
    Returns the pairs and counts: instructions read, with fewer than two labels, without any pair whose
    gap reaches ``min_gap``, pairs skipped because both texts were identical, and pairs made.
    """
    if min_gap <= 0:
        raise ValueError(f"min_gap must be > 0, got {min_gap}")
    stats = {"instructions": len(records), "fewer_than_two_labels": 0, "no_gap": 0,
             "identical_texts": 0, "pairs": 0, "min_gap": min_gap, "per_instruction": per_instruction}
    pairs: list[PreferencePair] = []
    for rec in records:
        idx = rec.labelled
        if len(idx) < 2:
            stats["fewer_than_two_labels"] += 1
            continue
        candidates = sorted(
            ((rec.gold[i] - rec.gold[j], i, j) for i in idx for j in idx if rec.gold[i] - rec.gold[j] >= min_gap),
            key=lambda t: (-t[0], t[1], t[2]))
        used: set[int] = set()
        made = 0
        for gap, i, j in candidates:
            if per_instruction is not None and made >= per_instruction:
                break
            if per_instruction is not None and (i in used or j in used):
                continue
            if skip_identical and rec.samples[i].strip() == rec.samples[j].strip():
                stats["identical_texts"] += 1
                continue
            used.update((i, j))
            pairs.append(PreferencePair(prompt=rec.prompt, chosen=rec.response(i), rejected=rec.response(j),
                                        margin=round(gap, 6), id=f"{rec.id}:{i}>{j}", subset=rec.subset,
                                        source="bon-gold-gap"))
            made += 1
        if made == 0:
            stats["no_gap"] += 1
    stats["pairs"] = len(pairs)
    return pairs, stats


def write_bon_records(records: list[BonRecord], path: str | Path) -> Path:
    """Write records in the AlpacaEval best-of-16 shape, which :func:`load_bon_records` and
    :func:`rewardlab.bon.data.load_bon_items` (hence ``rewardlab bon``) read back unchanged."""

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        for r in records:
            row = {"id": r.id, "dataset": r.subset, "instruction": r.instruction, "reference": r.reference,
                   "samples": list(r.samples), "gold_preference": list(r.gold)}
            fh.write(jsonout.dumps(row) + "\n")
    return path
