"""Gold-labelled preference pairs from best-of-n samples, split by instruction and by source.

A best-of-n file with gold judgements (the AlpacaEval best-of-16 set: 11 GPT-4-judged samples for each
of 805 instructions, see :mod:`rewardlab.data.bon`) becomes a training set and two evaluation sets:

- **Pairs.** Every two labelled samples of one instruction whose gold scores differ by at least
  ``min_gap`` (:func:`rewardlab.data.bon.gold_gap_pairs` with ``per_instruction=None``): the higher one
  is ``chosen``, ``margin`` is the gap (what ``bt_margin`` reads), ``subset`` the source (the record's
  ``dataset``), ``id`` is ``"<instruction id>:<i>><j>"``. Identical texts are skipped and counted.
- **Splits by instruction.** An instruction of an in-distribution source (``id_sources``) goes to
  ``train`` or ``heldout``, one of an out-of-distribution source (``ood_sources``) to ``ood``; records
  of any other source are left out and counted. The held-out instructions are the first
  ``round(heldout_fraction × n)`` ID instructions in the *split order*: instruction ids sorted by the
  sha256 of ``"<seed>:<id>"``. That order depends on the seed and the ids alone, so the same
  instructions are held out at every ``min_gap``, and no instruction is ever in two splits.
- **Pair order.** Each split lists its pairs instruction by instruction in split order (widest gap
  first within one), so the first N training pairs are whole instructions and a larger N contains a
  smaller one: :func:`take_pairs` (and ``data.train_limit`` on a written ``train.jsonl``) gives the
  learning-curve subsets and says how many instructions they rest on.
- **Best-of-n.** ``bon_heldout_id`` and ``bon_heldout_ood`` are the records of every held-out and OOD
  instruction (with or without a pair): best-of-n judged on them uses no instruction that a training
  pair came from.

With ``min_gap=0.5`` the AlpacaEval file gives 6,317 pairs from 388 instructions: selfinstruct 1,886,
oasst 1,529, koala 1,169, helpful_base 1,023, vicuna 710 (``tests/unit/test_bon_pairs.py`` checks it).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rewardlab import jsonout
from rewardlab.data.bon import BonRecord, gold_gap_pairs, load_bon_records, write_bon_records
from rewardlab.data.load import write_pairs_jsonl
from rewardlab.data.readers import DataError
from rewardlab.types import PreferencePair

ID_SOURCES = ("selfinstruct", "oasst", "helpful_base")
OOD_SOURCES = ("koala", "vicuna")
SPLITS = ("train", "heldout", "ood")

log = logging.getLogger("rewardlab")


@dataclass
class BonPairs:
    """What :func:`build_bon_pairs` returns: pairs per split, best-of-n records of the held-out
    instructions, and the counts (see :func:`build_bon_pairs` for ``stats``)."""

    train: list[PreferencePair]
    heldout: list[PreferencePair]
    ood: list[PreferencePair]
    bon_heldout_id: list[BonRecord]
    bon_heldout_ood: list[BonRecord]
    instructions: dict[str, list[str]]
    """Instruction ids per split (``train``, ``heldout``, ``ood``), in split order, with or without pairs."""
    stats: dict


def instruction_of(pair_id: str) -> str:
    """The instruction id of a pair id ``"<instruction id>:<i>><j>"``."""
    return pair_id.rsplit(":", 1)[0]


def split_order(ids: Sequence[str], seed: int = 0) -> list[str]:
    """``ids`` sorted by the sha256 of ``"<seed>:<id>"``: a seeded order that no other id disturbs."""
    return sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())


def settings_problems(min_gap: float, heldout_fraction: float, id_sources: Sequence[str],
                      ood_sources: Sequence[str]) -> list[str]:
    """What is wrong with the builder's settings, one message each, named as the arguments are (the
    recipe keys are ``data.bon_<name>``); empty when they are usable."""
    both = sorted(set(id_sources) & set(ood_sources))
    return [msg for bad, msg in [
        (min_gap <= 0, f"min_gap must be > 0, got {min_gap}"),
        (not 0.0 <= heldout_fraction < 1.0, f"heldout_fraction must be in [0, 1), got {heldout_fraction}"),
        (not id_sources, "id_sources must name at least one source (the records' dataset field)"),
        (bool(both), f"id_sources and ood_sources both list {both}"),
    ] if bad]


def build_bon_pairs(records: Sequence[BonRecord], min_gap: float = 0.5, heldout_fraction: float = 0.3,
                    id_sources: Sequence[str] = ID_SOURCES, ood_sources: Sequence[str] = OOD_SOURCES,
                    seed: int = 0, source: str = "records") -> BonPairs:
    """Pairs per split from best-of-n records (the rules are in the module docstring).

    ``stats`` holds the settings and: ``instructions`` (read, per split, ``other_source``: left out),
    ``instructions_with_pairs`` per split, ``pairs`` per split (``total`` and ``by_source``),
    ``dropped_pairs`` (``identical_texts``, ``other_source``) and ``instructions_without_pairs``
    (``fewer_than_two_labels``, ``no_gap``). Bad settings (:func:`settings_problems`) raise a
    ``ValueError``; a repeated instruction id is a :class:`DataError` naming ``source``.
    """
    problems = settings_problems(min_gap, heldout_fraction, id_sources, ood_sources)
    if problems:
        raise ValueError("; ".join(problems))
    repeated = [i for i, n in Counter(r.id for r in records).items() if n > 1]
    if repeated:
        raise DataError(source, "id", f"instruction id {repeated[0]!r} appears in {len(repeated)} or more records; "
                        "splits go by instruction id, so ids must be unique", reason="bad_structure")
    pairs, gap_stats = gold_gap_pairs(list(records), min_gap=min_gap, per_instruction=None)
    by_instruction: dict[str, list[PreferencePair]] = {}
    for p in pairs:
        by_instruction.setdefault(instruction_of(p.id), []).append(p)
    id_ids = split_order([r.id for r in records if r.subset in id_sources], seed)
    n_heldout = round(heldout_fraction * len(id_ids))
    split_ids = {"train": id_ids[n_heldout:], "heldout": id_ids[:n_heldout],
                 "ood": split_order([r.id for r in records if r.subset in ood_sources], seed)}
    out = {name: [p for i in ids for p in by_instruction.get(i, [])] for name, ids in split_ids.items()}
    rec_by_id = {r.id: r for r in records}
    known = set(id_sources) | set(ood_sources)
    stats = {
        "source": source, "min_gap": min_gap, "heldout_fraction": heldout_fraction, "seed": seed,
        "id_sources": list(id_sources), "ood_sources": list(ood_sources),
        "instructions": {"read": len(records), **{k: len(v) for k, v in split_ids.items()},
                         "other_source": sum(r.subset not in known for r in records)},
        "instructions_with_pairs": {k: sum(i in by_instruction for i in v) for k, v in split_ids.items()},
        "pairs": {k: {"total": len(v), "by_source": dict(Counter(p.subset for p in v).most_common())}
                  for k, v in out.items()},
        "dropped_pairs": {"identical_texts": gap_stats["identical_texts"],
                          "other_source": sum(p.subset not in known for p in pairs)},
        "instructions_without_pairs": {k: gap_stats[k] for k in ("fewer_than_two_labels", "no_gap")},
    }
    return BonPairs(**out, bon_heldout_id=[rec_by_id[i] for i in split_ids["heldout"]],
                    bon_heldout_ood=[rec_by_id[i] for i in split_ids["ood"]], instructions=split_ids, stats=stats)


def bon_pairs_from_file(path: str | Path, **kwargs) -> BonPairs:
    """:func:`build_bon_pairs` on the records of ``path`` (read strictly: a bad record raises a
    :class:`DataError` naming file, line and field); ``stats["source"]`` is the path."""
    records, _ = load_bon_records(path)
    return build_bon_pairs(records, source=str(path), **kwargs)


def take_pairs(pairs: Sequence[PreferencePair], n: int | None,
               spread: bool = False) -> tuple[list[PreferencePair], int]:
    """The first ``n`` pairs (``None``: all) and the number of instructions they come from.

    By default whole instructions in the order given (a builder split's order: the learning-curve
    subsets, each containing the smaller ones). ``spread=True`` deals one pair per instruction in turn
    (each instruction's first pair, then each one's second, ...), so a capped set covers as many
    instructions as it can: the rule for capping evaluation sets.
    """
    if n is not None and n < 0:
        raise ValueError(f"n must be >= 0 or None, got {n}")
    if spread:
        groups: dict[str, list[PreferencePair]] = {}
        for p in pairs:
            groups.setdefault(instruction_of(p.id), []).append(p)
        deepest = max((len(g) for g in groups.values()), default=0)
        pairs = [g[k] for k in range(deepest) for g in groups.values() if k < len(g)]
    taken = list(pairs[:n] if n is not None else pairs)
    return taken, len({instruction_of(p.id) for p in taken})


def take_instructions(pairs: Sequence[PreferencePair], n: int | None) -> tuple[list[PreferencePair], int]:
    """Every pair of the first ``n`` instructions (``None``: all) in the order given, and how many
    instructions that is. A frozen backbone's cost is one pass per text, and an instruction's texts make
    all of its pairs, so this is the cheapest way to a given number of instructions."""
    if n is not None and n < 0:
        raise ValueError(f"n must be >= 0 or None, got {n}")
    order = list(dict.fromkeys(instruction_of(p.id) for p in pairs))
    keep = set(order if n is None else order[:n])
    return [p for p in pairs if instruction_of(p.id) in keep], len(keep)


def training_splits(path: str | Path, train_limit: int | None = None, eval_size: int | None = None,
                    train_instructions: int | None = None, eval_instructions: int | None = None,
                    **kwargs) -> tuple[list[PreferencePair], list[PreferencePair], list[PreferencePair], dict]:
    """What a recipe with ``data.bon_pairs`` trains and evaluates on: the training pairs (the first
    ``train_limit``, whole instructions; or every pair of the first ``train_instructions``), the held-out
    and OOD pairs (each capped at ``eval_size``, one pair per instruction in turn; or every pair of the
    first ``eval_instructions`` of each), and the builder's stats with ``used``: the pairs and
    instructions of each set as used. ``kwargs`` go to :func:`build_bon_pairs`."""
    built = bon_pairs_from_file(path, **kwargs)
    log.info("data: %s", format_stats(built.stats))
    if train_instructions:
        train, n_train = take_instructions(take_pairs(built.train, train_limit)[0], train_instructions)
    else:
        train, n_train = take_pairs(built.train, train_limit)
    if eval_instructions:
        heldout, n_heldout = take_instructions(built.heldout, eval_instructions)
        ood, n_ood = take_instructions(built.ood, eval_instructions)
    else:
        heldout, n_heldout = take_pairs(built.heldout, eval_size, spread=True)
        ood, n_ood = take_pairs(built.ood, eval_size, spread=True)
    used = {"train": {"pairs": len(train), "instructions": n_train},
            "heldout": {"pairs": len(heldout), "instructions": n_heldout},
            "ood": {"pairs": len(ood), "instructions": n_ood}}
    log.info("data used: %s", used)
    return train, heldout, ood, {**built.stats, "used": used}


def write_bon_pairs(built: BonPairs, out: str | Path) -> dict[str, Path]:
    """Write ``train.jsonl``, ``heldout.jsonl``, ``ood.jsonl`` (the ``explicit`` format with margin and
    subset, in split order), ``bon_heldout_id.jsonl`` / ``bon_heldout_ood.jsonl`` (best-of-n records
    of the held-out instructions, in the AlpacaEval shape ``rewardlab bon`` reads) and ``stats.json``
    (the stats plus the instruction ids of every split) into ``out``."""
    out = Path(out)
    paths = {name: write_pairs_jsonl(getattr(built, name), out / f"{name}.jsonl") for name in SPLITS}
    for name in ("bon_heldout_id", "bon_heldout_ood"):
        paths[name] = write_bon_records(getattr(built, name), out / f"{name}.jsonl")
    paths["stats"] = out / "stats.json"
    paths["stats"].write_text(jsonout.dumps({**built.stats, "instruction_ids": built.instructions}, indent=2) + "\n")
    return paths


def format_stats(stats: dict) -> str:
    """A few lines for a terminal: instructions and pairs per split, pairs per source, what was dropped."""
    lines = [f"{stats['source']}: {stats['instructions']['read']} instructions, gold gap >= {stats['min_gap']}, "
             f"held out {stats['heldout_fraction']:g} of the in-distribution ones (seed {stats['seed']})"]
    for split in SPLITS:
        p = stats["pairs"][split]
        by = ", ".join(f"{k} {v}" for k, v in p["by_source"].items()) or "none"
        lines.append(f"  {split:<8} {stats['instructions'][split]:>4} instructions "
                     f"({stats['instructions_with_pairs'][split]} with pairs), {p['total']:>5} pairs: {by}")
    dropped = {**stats["dropped_pairs"], "instructions of other sources": stats["instructions"]["other_source"]}
    lines.append("  dropped: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in dropped.items()))
    return "\n".join(lines)
