"""Full evaluation of reward models on named pair sets: accuracy, null baselines, length control,
calibration and, for RewardBench subsets, the official sections — one table, one JSON.

:func:`evaluate_set` is the per-(model, data set) unit that ``rewardlab rewardbench`` and ``rewardlab
suite`` share; :func:`run_suite` loops it over models and data sets, writing per-pair scores beside the
summary and a reliability plot.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rewardlab import jsonout
from rewardlab.eval.baselines import length_baselines, length_controlled
from rewardlab.eval.calibration import calibration, plot_reliability
from rewardlab.eval.pairwise import evaluate_pairs
from rewardlab.eval.rewardbench import EXAMPLE_COUNTS, PRIOR_SETS, rewardbench_summary
from rewardlab.types import PreferencePair, Scorer


def prob_chosen(scorer: Scorer, rows: Sequence[dict]) -> np.ndarray:
    """P(chosen ≻ rejected) per pair from :func:`evaluate_pairs` rows: the judge's probability for a
    generative scorer (its ``chosen_score``), σ(r_c − r_r) for a scalar one."""
    c = np.array([r["chosen_score"] for r in rows], dtype=float)
    if scorer.is_generative:
        return c
    r = np.array([r["rejected_score"] for r in rows], dtype=float)
    return 1.0 / (1.0 + np.exp(-(c - r)))


def is_rewardbench(pairs: Sequence[PreferencePair]) -> bool:
    """True when some pair's subset is a RewardBench (v1) or prior-sets subset name."""
    return any(p.subset in EXAMPLE_COUNTS or p.subset in PRIOR_SETS for p in pairs)


def evaluate_set(scorer: Scorer, pairs: Sequence[PreferencePair], seed: int = 0, tie_tol: float = 0.0,
                 n_bins: int = 10, rewardbench: bool | None = None) -> tuple[dict, list[dict]]:
    """Accuracy (:func:`evaluate_pairs`) plus ``baselines`` (prefer longer / shorter, per subset),
    ``length_control``, ``calibration`` and — when ``rewardbench`` (default: the subsets say so) —
    the ``rewardbench`` block. Per-pair rows gain ``p_chosen``."""
    summary, rows = evaluate_pairs(scorer, pairs, tie_tol=tie_tol, seed=seed)
    outcomes = np.array([r["outcome"] for r in rows], dtype=float)
    p = prob_chosen(scorer, rows)
    for row, pc in zip(rows, p, strict=True):
        row["p_chosen"] = float(pc)
    summary["baselines"] = length_baselines(pairs)
    summary["length_control"] = length_controlled(pairs, outcomes)
    summary["calibration"] = calibration(p, n_bins)
    if rewardbench if rewardbench is not None else is_rewardbench(pairs):
        summary["rewardbench"] = rewardbench_summary(pairs, outcomes, seed)
    return summary, rows


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "x"


def run_suite(models: dict[str, Callable[[], Scorer]], datasets: dict[str, Sequence[PreferencePair]],
              out: str | Path, seed: int = 0, provenance: dict | None = None) -> dict:
    """Evaluate every model on every data set; write ``suite.json``, ``<model>__<data>.pairs.jsonl``,
    ``reliability.png`` and ``table.md`` into ``out``. ``models`` maps a name to a factory, called
    once per model (one model in memory at a time)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from rewardlab.eval.provenance import dtype_of, template_of

    results: dict[str, dict[str, dict]] = {}
    calib: dict[str, dict] = {}
    provenance = dict(provenance or {})
    for mname, factory in models.items():
        scorer = factory()
        provenance.setdefault("templates", {})[mname] = template_of(scorer)
        provenance.setdefault("dtypes", {})[mname] = dtype_of(scorer)
        results[mname] = {}
        for dname, pairs in datasets.items():
            summary, rows = evaluate_set(scorer, pairs, seed=seed)
            results[mname][dname] = summary
            calib[f"{mname} / {dname}"] = summary["calibration"]
            with (out / f"{_slug(mname)}__{_slug(dname)}.pairs.jsonl").open("w") as fh:
                for row in rows:
                    fh.write(jsonout.dumps(row) + "\n")
        del scorer
    table = suite_table(results)
    doc = {"provenance": provenance, "results": results, "table": table}
    (out / "suite.json").write_text(jsonout.dumps(doc, indent=2) + "\n")
    (out / "table.md").write_text(table + "\n")
    plot_reliability(calib, out / "reliability.png", title="calibration")
    return doc


def suite_table(results: dict[str, dict[str, dict]]) -> str:
    """Markdown: one row per model and per null baseline; per data set accuracy [95% CI] (ties half),
    length-controlled accuracy, ECE, and the RewardBench four-section score where there is one."""
    from rewardlab.eval.study import fmt_acc, markdown_table

    datasets = list(dict.fromkeys(d for r in results.values() for d in r))
    cols, cells = [], {}
    for d in datasets:
        cols += [f"{d} acc", f"{d} LC acc", f"{d} ECE"]
    any_rb = any("rewardbench" in r.get(d, {}) for r in results.values() for d in datasets)
    for m, per in results.items():
        for d, s in per.items():
            cells[(m, f"{d} acc")] = fmt_acc(s)
            lc = s["length_control"]["length_controlled_accuracy"]
            cells[(m, f"{d} LC acc")] = "—" if lc is None else f"{100 * lc:.1f}"
            cells[(m, f"{d} ECE")] = f"{s['calibration']['ece']:.3f}"
            if "rewardbench" in s:
                v = s["rewardbench"]["score_four_sections"]
                cells[(m, f"{d} RB 4-section")] = "—" if v is None else f"{100 * v:.1f}"
    if any_rb:
        cols += [f"{d} RB 4-section" for d in datasets]
    first = next(iter(results.values()))
    for base, label in (("prefer_longer", "null: prefer longer"), ("prefer_shorter", "null: prefer shorter")):
        for d, s in first.items():
            cells[(label, f"{d} acc")] = f"{100 * s['baselines'][base]['accuracy']:.1f}"
    return markdown_table([*results, "null: prefer longer", "null: prefer shorter"], cols, cells, row_header="model")
