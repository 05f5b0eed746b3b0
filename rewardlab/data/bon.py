"""Best-of-n sample sets with gold judgements, and preference pairs built from them.

A *best-of-n record* (:class:`BonRecord`, read by :func:`load_bon_records`, the one reader of these
files) is one prompt with ``n`` sampled answers and, for some of them, a gold preference score (the AlpacaEval best-of-16 set: a GPT-4 judgement of each sample against a reference
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
    """One prompt with its candidate responses; ``gold[i]`` is ``None`` where response ``i`` has no label.
    Best-of-n scoring (:mod:`rewardlab.bon`) and gold-gap pairs read this one type."""

    id: str
    prompt: Conversation
    responses: tuple[Conversation, ...]
    gold: tuple[float | None, ...]
    subset: str | None = None
    reference: str | None = None

    @property
    def instruction(self) -> str:
        """The text of the prompt's last message (the AlpacaEval instruction)."""
        return self.prompt[-1]["content"] if self.prompt else ""

    @property
    def samples(self) -> tuple[str, ...]:
        """Each response's text (its last message)."""
        return tuple(r[-1]["content"] for r in self.responses)

    def response(self, i: int) -> Conversation:
        return self.responses[i]

    def conversation(self, i: int) -> Conversation:
        return [*self.prompt, *self.responses[i]]

    @property
    def labelled(self) -> list[int]:
        """Indices of responses with a gold score."""
        return [i for i, g in enumerate(self.gold) if g is not None]


def _gold(location: str, values, n: int, key: str) -> tuple[float | None, ...]:
    """``n`` finite numbers or nulls (``values`` None: no labels at all)."""
    if values is None:
        return (None,) * n
    if not isinstance(values, list):
        raise DataError(location, key, f"expected a list of numbers or nulls, one per response, got "
                        f"{type(values).__name__}")
    if len(values) != n:
        raise DataError(location, key, f"has {len(values)} entries for {n} responses", reason="bad_structure")
    out: list[float | None] = []
    for i, g in enumerate(values):
        if g is not None and (isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g)):
            raise DataError(location, f"{key}[{i}]", f"expected a finite number or null, got {g!r}")
        out.append(None if g is None else float(g))
    return tuple(out)


def _parse_alpacaeval(location: str, rec: dict) -> BonRecord:
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
    for i, s in enumerate(samples):
        check_text(s, location, f"samples[{i}]")
    subset, reference = rec.get("dataset"), rec.get("reference")
    return BonRecord(id=str(rec.get("id", location)), prompt=[{"role": "user", "content": instruction}],
                     responses=tuple([{"role": "assistant", "content": s}] for s in samples),
                     gold=_gold(location, gold, len(samples), "gold_preference"),
                     subset=subset if isinstance(subset, str) else None,
                     reference=reference if isinstance(reference, str) else None)


def _parse_messages(location: str, rec: dict) -> BonRecord:
    from rewardlab.data.formats import to_messages, to_prompt

    for key in ("prompt", "responses"):
        if key not in rec:
            raise DataError(location, key, "missing; expected prompt + responses (+ gold), or "
                            "instruction + samples + gold_preference", reason="missing_field")
    if not isinstance(rec["responses"], list) or not rec["responses"]:
        raise DataError(location, "responses", "expected a non-empty list of responses")
    responses = tuple(to_messages(r, location, f"responses[{i}]", "assistant") for i, r in enumerate(rec["responses"]))
    subset = rec.get("subset")
    return BonRecord(id=str(rec.get("id", location)), prompt=to_prompt(rec["prompt"], location),
                     responses=responses, gold=_gold(location, rec.get("gold"), len(responses), "gold"),
                     subset=subset if isinstance(subset, str) else None)


def parse_bon_record(location: str, rec) -> BonRecord:
    """One record of either shape: ``instruction`` + ``samples`` + ``gold_preference`` (AlpacaEval
    best-of-16, what ``rewardlab sample`` writes), or ``prompt`` + ``responses`` (+ ``gold``)."""
    if not isinstance(rec, dict):
        raise DataError(location, "record", f"expected a JSON object, got {type(rec).__name__}")
    if "instruction" in rec or "samples" in rec:
        return _parse_alpacaeval(location, rec)
    return _parse_messages(location, rec)


def load_bon_records(source: str | Path, lenient: bool = False, report: DataReport | None = None,
                     limit: int | None = None) -> tuple[list[BonRecord], DataReport]:
    """The one reader of best-of-n files (:func:`parse_bon_record`'s two shapes; optional ``id``,
    ``dataset``/``subset``, ``reference``), the first ``limit`` records. Strict by default: the first bad
    record raises a ``DataError`` naming file, line and field; ``lenient=True`` drops it and counts it by
    reason in the report."""
    report = report or DataReport(source=str(source))
    out: list[BonRecord] = []
    for location, rec in iter_records(source, report if lenient else None):
        if limit is not None and len(out) >= limit:
            break
        report.read += 1
        try:
            out.append(parse_bon_record(location, rec))
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
