"""Building blocks of comparison studies: evaluation sets, cached runs, result tables and plots.

A study trains or loads several reward models, evaluates each on the same named pair sets
(in-distribution, out-of-distribution, ...) and reports accuracy with bootstrap 95% intervals. The
pieces here keep every study alike: pair sets are written once as JSONL so recipes and the CLI can
read them, each evaluation is cached as JSON (a rerun skips what is done), and the table and plot
come from the cached results only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from rewardlab import jsonout
from rewardlab.data.load import write_pairs_jsonl  # studies import it from here too
from rewardlab.types import PreferencePair


def start_study(args, data_paths, runs: str | Path,
                ignore: Sequence[str] = ("runs", "out", "rows", "methods")) -> Path:
    """What every study script does first: log with timestamps, stay offline, check that the data
    files exist, and pin ``runs`` to these settings.

    ``runs/settings.json`` records the arguments (all but ``ignore``: where outputs go and which rows
    to run). A rerun with other settings stops with the differing keys named, since the cached models
    and evaluations in ``runs`` would otherwise answer for other sizes.
    """
    import logging
    import os
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for path in data_paths:
        if not Path(path).exists():
            sys.exit(f"data not found: {path} (pass --hh / --bon)")
    runs = Path(runs)
    settings = {k: v for k, v in vars(args).items() if k not in ignore}
    path = runs / "settings.json"
    if path.exists():
        old = json.loads(path.read_text())
        diff = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if diff:
            sys.exit(f"{runs} holds runs made with other settings "
                     f"({', '.join(f'{k}: {a} -> {b}' for k, (a, b) in diff.items())}); pass another --runs or delete it")
    runs.mkdir(parents=True, exist_ok=True)
    path.write_text(jsonout.dumps(settings, indent=2) + "\n")
    return runs


def id_ood_sets(hh: str | Path, bon: str | Path, runs: str | Path, id_size: int, ood_size: int,
                sizes: Sequence[int | str], seed: int = 0, min_gap: float = 0.5) -> dict:
    """The pair sets of an in- vs out-of-distribution study, written once under ``runs/data``.

    In-distribution: HH-RLHF transcripts (lenient: unusable lines dropped and counted), ``id_size`` of
    them held out with ``seed``; the training sets are the first ``n`` of the rest for each ``n`` in
    ``sizes`` (``"all"``: every remaining pair), so a larger set contains the smaller. Out of
    distribution: best-of-n samples turned into pairs by :func:`rewardlab.data.bon.gold_gap_pairs`
    (``min_gap``), ``ood_size`` of them sampled with ``seed`` (0: all). Returns the pairs, the files and
    the counts a report needs.
    """
    import random

    from rewardlab.data import load_pairs, split_pairs
    from rewardlab.data.bon import gold_gap_pairs, load_bon_records

    hh_pairs, hh_report = load_pairs(hh, format="hh", lenient=True)
    pool, id_eval = split_pairs(hh_pairs, eval_size=id_size, seed=seed)
    records, _ = load_bon_records(bon)
    ood, ood_stats = gold_gap_pairs(records, min_gap=min_gap)
    if ood_size and ood_size < len(ood):
        ood = random.Random(seed).sample(ood, ood_size)
    data = Path(runs) / "data"
    train = {}
    for s in sizes:
        n = len(pool) if str(s).strip() == "all" else int(s)
        if not 0 < n <= len(pool):
            raise ValueError(f"training-set size {s} is not in 1..{len(pool)} (pairs available after holding out)")
        train[n] = write_pairs_jsonl(pool[:n], data / f"train_{n}.jsonl")
    return {"id_eval": id_eval, "ood_eval": ood, "train_files": train, "hh_report": hh_report.to_dict(),
            "pool": len(pool), "ood_stats": ood_stats, "hh_margins": any(p.margin is not None for p in hh_pairs),
            "id_file": write_pairs_jsonl(id_eval, data / "id_eval.jsonl"),
            "ood_file": write_pairs_jsonl(ood, data / "ood_eval.jsonl")}


def cached_eval(scorer_factory, pairs: Sequence[PreferencePair], out: str | Path, seed: int = 0) -> dict:
    """Evaluate once: the summary cached at ``out`` (with per-pair rows beside it) is returned if present;
    otherwise ``scorer_factory()`` is called, the pairs scored and the result written."""
    from rewardlab.eval.pairwise import evaluate_pairs, write_results

    out = Path(out)
    if out.exists():
        return json.loads(out.read_text())
    summary, rows = evaluate_pairs(scorer_factory(), pairs, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_results(summary, rows, out)
    return summary


def load_outcomes(summary_path: str | Path) -> dict[str, float]:
    """Per-pair outcomes (1 right, 0.5 tie, 0 wrong) by pair id, from the rows written beside a summary."""
    rows_path = Path(summary_path).with_suffix(".pairs.jsonl")
    out = {}
    with open(rows_path) as fh:
        for line in fh:
            row = json.loads(line)
            out[row["id"]] = float(row["outcome"])
    return out


def paired_difference(a: dict[str, float], b: dict[str, float], n_boot: int = 2000, seed: int = 0,
                      groups=None) -> tuple[float, tuple[float, float]]:
    """Mean of ``a − b`` over the pairs both scored, with a 95% paired bootstrap interval.

    Resampling pairs (not each model separately) keeps the pairing: both models are judged on the
    same resampled pairs, which makes the interval much tighter than comparing two separate intervals.
    ``groups`` (a function or a mapping from pair id to cluster, e.g.
    :func:`rewardlab.data.bon_pairs.instruction_of`) resamples whole clusters instead: the honest
    interval when pairs of one instruction are correlated. Every pair its own cluster: the pair bootstrap.
    """
    import numpy as np

    ids = sorted(set(a) & set(b))
    if not ids:
        raise ValueError("the two results share no pair ids")
    d = np.array([a[i] - b[i] for i in ids])
    rng = np.random.default_rng(seed)
    cluster = None
    if groups is not None:
        name = groups if callable(groups) else groups.__getitem__
        _, cluster = np.unique(np.array([str(name(i)) for i in ids]), return_inverse=True)
    if cluster is not None and cluster.max() + 1 < len(d):
        sums, sizes = np.bincount(cluster, weights=d), np.bincount(cluster).astype(float)
        pick = rng.integers(0, sums.size, size=(n_boot, sums.size))
        means = sums[pick].sum(1) / sizes[pick].sum(1)
    else:
        means = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(d.mean()), (float(lo), float(hi))


def chance_line(rows: dict[str, dict[str, dict]], splits: Sequence[str] = ("ID", "OOD")) -> str:
    """One line: which accuracies have a 95% interval entirely above, or entirely below, 50%.
    ``rows[name][split]`` is an evaluation summary with ``ci95``."""
    cells = [(k, split, r[split]) for k, r in rows.items() for split in splits]
    above = [f"{k} {split}" for k, split, c in cells if c["ci95"][0] > 0.5]
    below = [f"{k} {split}" for k, split, c in cells if c["ci95"][1] < 0.5]
    return (f"- {len(cells)} accuracies; intervals entirely above 50%: {', '.join(above) or 'none'}; "
            f"entirely below 50%: {', '.join(below) or 'none'}.")


def paired_lines(summary_path, base: str, others: Sequence[str], label, splits: Sequence[str] = ("ID", "OOD"),
                 prefix: str = "", groups=None) -> list[str]:
    """``others`` against ``base`` on the same pairs: one line per (split, row) with the accuracy
    difference in points, its paired-bootstrap 95% interval and a verdict. ``summary_path(row, split)``
    locates a cached evaluation summary; ``label(row)`` names a row; ``groups`` as in
    :func:`paired_difference` (clusters resampled together)."""
    lines = []
    for split in splits:
        ref = load_outcomes(summary_path(base, split))
        for m in others:
            diff, (lo, hi) = paired_difference(load_outcomes(summary_path(m, split)), ref, groups=groups)
            verdict = "better" if lo > 0 else "worse" if hi < 0 else "no clear difference"
            lines.append(f"- {prefix}{split}, {label(m)}: {100 * diff:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
                         f" → {verdict}")
    return lines


def fmt_acc(result: dict | None) -> str:
    """``"61.0 [54.0, 68.0]"`` (percent, with the 95% interval), or ``"—"`` for a missing result."""
    if not result:
        return "—"
    lo, hi = result["ci95"]
    return f"{100 * result['accuracy']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def markdown_table(rows: Sequence[str], columns: Sequence[str], cells: dict[tuple[str, str], str],
                   row_header: str = "method") -> str:
    """A Markdown table; ``cells[(row, column)]`` holds the text, missing cells show ``—``."""
    lines = ["| " + " | ".join([row_header, *columns]) + " |",
             "|" + "---|" + "---:|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join([r, *(cells.get((r, c), "—") for c in columns)]) + " |")
    return "\n".join(lines)


def plot_accuracy(results: dict[str, dict[str, dict | None]], path: str | Path, title: str,
                  chance: float = 0.5) -> Path:
    """Grouped bars: one group per row (method), one bar per column (eval set), 95% intervals as error bars.

    ``results[row][column]`` is a summary from ``evaluate_pairs`` (``accuracy``, ``ci95``) or ``None``.
    """
    from rewardlab.plotting import pyplot, save_figure

    plt = pyplot()

    rows = list(results)
    columns = list(dict.fromkeys(c for r in rows for c in results[r]))
    width = 0.8 / max(1, len(columns))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) * max(1, len(columns)) ** 0.5 + 2), 4.2))
    for j, col in enumerate(columns):
        xs, ys, errs = [], [], [[], []]
        for i, r in enumerate(rows):
            res = results[r].get(col)
            if not res or res.get("accuracy") is None or math.isnan(res["accuracy"]):
                continue
            acc, (lo, hi) = res["accuracy"], res["ci95"]
            xs.append(i + (j - (len(columns) - 1) / 2) * width)
            ys.append(100 * acc)
            errs[0].append(100 * (acc - lo))
            errs[1].append(100 * (hi - acc))
        ax.bar(xs, ys, width=width * 0.95, yerr=errs, capsize=2, label=col)
    ax.axhline(100 * chance, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(rows, rotation=30, ha="right")
    ax.set_ylabel("preference accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=min(4, len(columns)))
    lows = [100 * results[r][c]["ci95"][0] for r in rows for c in columns if results[r].get(c)]
    ax.set_ylim(max(0.0, min([100 * chance - 10, *lows]) - 5), 100)
    fig.tight_layout()
    return save_figure(fig, path)
