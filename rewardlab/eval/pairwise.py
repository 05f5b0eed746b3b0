"""Preference accuracy of any Scorer on a set of pairs, overall and per subset, with bootstrap CIs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from rewardlab import jsonout
from rewardlab.types import PreferencePair, Scorer


def bootstrap_ci(correct: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                 groups: Sequence | None = None) -> list[float | None]:
    """Percentile bootstrap interval of the mean of ``correct`` ``(n,)`` (values in {0, 0.5, 1}, or paired
    differences of two such).

    Pairs are resampled one by one, unless ``groups`` ``(n,)`` names a cluster per pair (for
    best-of-n pairs: the instruction, :func:`rewardlab.data.bon_pairs.instruction_of`): then whole
    clusters are resampled with replacement (cluster bootstrap), as pairs of one instruction share
    its prompt and samples and are not independent. Pairs resampled alone understate the interval
    then. Every pair in its own cluster is the pair bootstrap (the same numbers).

    Pair resamples are drawn as multinomial counts over the distinct values (a resample's mean depends
    only on those counts): the same distribution as drawing ``n`` indices, in O(n_boot) memory. No
    pairs: ``[None, None]`` (not defined; JSON ``null``).
    """
    if correct.size == 0:
        return [None, None]
    rng = np.random.default_rng(seed)
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    if groups is not None:
        if len(groups) != correct.size:
            raise ValueError(f"groups has {len(groups)} entries for {correct.size} outcomes")
        _, which = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
        if which.max() + 1 < correct.size:  # some cluster holds several pairs
            sums = np.bincount(which, weights=correct)  # (clusters,)
            sizes = np.bincount(which).astype(float)
            pick = rng.integers(0, sums.size, size=(n_boot, sums.size))
            lo, hi = np.quantile(sums[pick].sum(1) / sizes[pick].sum(1), q)
            return [float(lo), float(hi)]
    values, counts = np.unique(correct, return_counts=True)
    draws = rng.multinomial(correct.size, counts / correct.size, size=n_boot)  # (n_boot, n_values)
    means = draws @ values / correct.size
    lo, hi = np.quantile(means, q)
    return [float(lo), float(hi)]


def pair_outcomes(chosen: torch.Tensor, rejected: torch.Tensor, tie_tol: float = 0.0) -> np.ndarray:
    """1 for a correct pair, 0 for a wrong one, 0.5 for a tie (|gap| <= tie_tol)."""
    gap = (chosen - rejected).double().numpy()
    return np.where(np.abs(gap) <= tie_tol, 0.5, (gap > 0).astype(float))


def prompt_groups(pairs: Sequence[PreferencePair]) -> list[str]:
    """The cluster of each pair for bootstrap intervals: its prompt. Pairs that share a prompt (best-of-n
    pairs of one instruction: they also share samples) are not independent, so they are resampled
    together; pairs with prompts of their own are resampled one by one, as before."""
    from rewardlab import jsonout

    return [jsonout.dumps(p.prompt, sort_keys=True) for p in pairs]


def accuracy_table(pairs: Sequence[PreferencePair], outcomes: np.ndarray, seed: int = 0,
                   groups: Sequence | None = None) -> dict:
    """``accuracy`` (ties count half), ``accuracy_ties_as_loss``, ``n``, ``ties``, ``ci95``, ``per_subset``;
    the accuracies of no pairs are ``None`` (not defined). ``groups``: a cluster per pair for the intervals
    (default: :func:`prompt_groups`); ``prompts`` counts the clusters."""
    groups = np.asarray(prompt_groups(pairs) if groups is None else groups, dtype=str)

    def block(o: np.ndarray, g: np.ndarray) -> dict:
        return {
            "accuracy": float(o.mean()) if o.size else None,
            "accuracy_ties_as_loss": float((o == 1).mean()) if o.size else None,
            "n": int(o.size),
            "ties": int((o == 0.5).sum()),
            "ci95": bootstrap_ci(o, seed=seed, groups=g),
            "prompts": len(set(g.tolist())),
        }

    subsets: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        subsets[p.subset or p.source or "all"].append(i)
    result = block(outcomes, groups)
    result["per_subset"] = {k: block(outcomes[idx], groups[idx]) for k, idx in sorted(subsets.items())}
    return result


def length_report(pairs: Sequence[PreferencePair], outcomes: np.ndarray, seed: int = 0,
                  groups: Sequence | None = None) -> dict:
    """The model against length alone, on the same pairs (see :mod:`rewardlab.eval.baselines`).

    ``prefer_longer`` / ``prefer_shorter``: the accuracy of each length heuristic; ``length_controlled_accuracy``:
    the model's accuracy with length balanced out (0.5 for any length heuristic); ``vs_best``: the
    better heuristic on these pairs (chosen after seeing them, so the comparison favours length) and the
    model's accuracy minus its accuracy, ``difference``, with a paired bootstrap 95% interval (resampling
    ``groups``, default :func:`prompt_groups`, as :func:`accuracy_table` does).
    """
    from rewardlab.eval.baselines import length_controlled, length_outcomes

    by_name = {name: length_outcomes(pairs, name) for name in ("prefer_longer", "prefer_shorter")}
    report: dict = {name: float(o.mean()) if o.size else None for name, o in by_name.items()}
    report["length_controlled_accuracy"] = length_controlled(pairs, outcomes)["length_controlled_accuracy"]
    if outcomes.size:
        best = max(by_name, key=lambda k: by_name[k].mean())
        diff = outcomes - by_name[best]
        report["vs_best"] = {"baseline": best, "difference": float(diff.mean()),
                             "ci95": bootstrap_ci(diff, seed=seed,
                                                  groups=prompt_groups(pairs) if groups is None else groups)}
    return report


def evaluate_pairs(
    scorer: Scorer, pairs: Sequence[PreferencePair], tie_tol: float = 0.0, seed: int = 0
) -> tuple[dict, list[dict]]:
    """Score every pair with ``scorer``; return the summary and per-pair rows.

    Scalar scorers are asked for rewards of both sides; generative ones (``is_generative``) for
    P(chosen ≻ rejected) directly, where a probability of exactly 0.5 is a tie. A judge that
    ``can_compare_orders`` also adds ``order_consistency`` (and, for sampled verdicts, ``verdicts`` and
    ``unparseable`` counts) to the summary, and ``p_forward`` / ``p_swapped`` to each row.
    """
    judged = None
    if scorer.is_generative:
        args = ([p.prompt for p in pairs], [p.chosen for p in pairs], [p.rejected for p in pairs])
        if scorer.can_compare_orders:  # per-order probabilities: order consistency
            judged = scorer.compare_detailed(*args)
            prob = judged.prob
        else:
            prob = scorer.compare(*args)
        chosen, rejected = prob, 1 - prob
    else:
        chosen, rejected = scorer.score_pairs(pairs)
    outcomes = pair_outcomes(chosen, rejected, tie_tol)
    groups = prompt_groups(pairs)
    summary = accuracy_table(pairs, outcomes, seed, groups)
    summary["length"] = length_report(pairs, outcomes, seed, groups)
    rows = [
        {
            "id": p.id,
            "subset": p.subset,
            "chosen_score": float(c),
            "rejected_score": float(r),
            "outcome": float(o),
        }
        for p, c, r, o in zip(pairs, chosen, rejected, outcomes, strict=True)
    ]
    if judged is not None:
        _add_judge_report(summary, rows, judged)
    return summary, rows


def _add_judge_report(summary: dict, rows: list[dict], judged) -> None:
    """Order consistency (how often the verdict survives swapping the responses), the parser's counts,
    and P(chosen ≻ rejected) read from each order in the per-pair rows."""
    summary["order_consistency"] = judged.order_consistency
    if judged.reasons:
        summary["verdicts"] = dict(judged.reasons)
        summary["unparseable"] = judged.unparseable
    consistent = judged.consistent
    for i, row in enumerate(rows):
        row["p_forward"] = float(judged.prob_forward[i])
        if judged.prob_swapped is not None:
            row["p_swapped"] = float(judged.prob_swapped[i])
            row["order_consistent"] = bool(consistent[i])


def write_results(summary: dict, rows: list[dict], out: str | Path) -> tuple[Path, Path]:
    """Write ``out`` (summary JSON) and ``<out stem>.pairs.jsonl`` (per-pair scores) beside it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(jsonout.dumps(summary, indent=2) + "\n")
    per_pair = out.with_name(out.stem + ".pairs.jsonl")
    with per_pair.open("w") as fh:
        for row in rows:
            fh.write(jsonout.dumps(row) + "\n")
    return out, per_pair
