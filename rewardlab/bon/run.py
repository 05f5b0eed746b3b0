"""``rewardlab bon``: score each candidate once per reward model, then every best-of-n curve from those scores.

The cost of the whole curve n = 1..N is one scoring pass over the P·N (prompt, candidate) sequences per
model: :func:`score_candidates` flattens them into a single ``Scorer.score`` call and
:mod:`rewardlab.bon.estimator` reuses the scores for every n (``benchmarks/bench_bon.py`` measures it).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from rewardlab import jsonout
from rewardlab.bon.data import BonItem, equal_size, labelled_only
from rewardlab.bon.estimator import expected_best_of_n, fit_gao
from rewardlab.config import ConfigError


def score_candidates(scorer, items: list[BonItem]) -> list[np.ndarray]:
    """Reward of every candidate, ``(N_p,)`` per prompt, from one ``scorer.score`` call."""
    if scorer.is_generative and not scorer.can_score_ids:
        raise ConfigError("best-of-n needs a scalar reward per candidate; this model is a pairwise judge "
                          "(is_generative) without one")
    convs = [it.conversation(i) for it in items for i in range(len(it.responses))]
    flat = scorer.score(convs).double().cpu().numpy()
    out, start = [], 0
    for it in items:
        out.append(flat[start:start + len(it.responses)])
        start += len(it.responses)
    return out


def prepare_items(items: list[BonItem], need_gold: bool, max_candidates: int | None = None) -> tuple[list[BonItem], dict]:
    """Keep labelled candidates when the gold comes from the file, then cut every prompt to a common N
    (at most ``max_candidates``)."""
    stats: dict = {"prompts_read": len(items)}
    if need_gold:
        items, stats = labelled_only(items)
        if not items:
            raise ConfigError("no prompt has two or more candidates with a gold value in the file; "
                              "pass --gold-model to judge them with a reward model")
    items, n = equal_size(items)
    if max_candidates:
        items, n = equal_size([dataclasses.replace(it, responses=it.responses[:max_candidates],
                                                   gold=it.gold[:max_candidates]) for it in items])
    stats["N"] = n
    stats["prompts"] = len(items)
    return items, stats


def bon_curves(proxy_scores: dict[str, list[np.ndarray]], gold: list[np.ndarray],
               win_threshold: float | None = None, n_boot: int = 1000, seed: int = 0) -> dict:
    """One curve per proxy (:func:`expected_best_of_n`) with the Gao fit of its gold gain, plus the
    random-choice and oracle (gold picks) references shared by all proxies."""
    result: dict = {"proxies": {}}
    for name, scores in proxy_scores.items():
        curve = expected_best_of_n(scores, gold, win_threshold=win_threshold, n_boot=n_boot, seed=seed)
        gain = np.asarray(curve["gold"]) - curve["gold"][0]
        curve["gao_fit"] = fit_gao(curve["kl"], gain) if len(gain) >= 2 else None
        oracle = {k: curve.pop(k) for k in list(curve) if k.startswith("oracle_")}
        result["proxies"][name] = curve
    first = next(iter(result["proxies"].values()))
    result.update(n=first["n"], kl=first["kl"], prompts=first["prompts"], candidates=first["candidates"],
                  random_gold=first["gold"][0], oracle=oracle)
    if win_threshold is not None:
        result["random_win_rate"] = first["gold_win_rate"][0]
        result["win_threshold"] = win_threshold
    return result


def run_bon(proxies: dict, items: list[BonItem], gold_scorer=None, win_threshold: float | None = None,
            n_boot: int = 1000, seed: int = 0) -> tuple[dict, dict[str, list[np.ndarray]]]:
    """Score ``items`` with every proxy Scorer (and ``gold_scorer`` when given, else the file's gold)
    and compute the curves. Returns the result and the per-candidate scores (``"gold"`` included)."""
    scores = {name: score_candidates(s, items) for name, s in proxies.items()}
    if gold_scorer is not None:
        gold = score_candidates(gold_scorer, items)
    else:
        gold = [np.array(it.gold, dtype=float) for it in items]
    result = bon_curves(scores, gold, win_threshold=win_threshold, n_boot=n_boot, seed=seed)
    for name, curve in result["proxies"].items():  # the plot's units: std of each model's candidate scores
        curve["proxy_std"] = float(np.concatenate(scores[name]).std())
        curve["gold_std"] = float(np.concatenate(gold).std())
    scores["gold"] = gold
    return result, scores


def write_bon(result: dict, scores: dict[str, list[np.ndarray]], items: list[BonItem], out: str | Path,
              title: str = "best-of-n") -> dict[str, Path]:
    """``bon.json`` (the result), ``scores.jsonl`` (every candidate's proxy and gold scores: rerun the
    curves without a model) and ``bon.png`` in ``out``."""
    from rewardlab.bon.plots import plot_bon

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "bon.json", "scores": out / "scores.jsonl", "plot": out / "bon.png"}
    paths["json"].write_text(jsonout.dumps(result, indent=2) + "\n")
    with paths["scores"].open("w") as fh:
        for p, it in enumerate(items):
            fh.write(jsonout.dumps({"id": it.id, **{k: [round(float(x), 6) for x in v[p]] for k, v in scores.items()}})
                     + "\n")
    plot_bon(result, paths["plot"], title=title)
    return paths


def read_scores(path: str | Path) -> tuple[list[str], dict[str, list[np.ndarray]]]:
    """The ids and per-candidate scores written by :func:`write_bon`."""
    ids, scores = [], {}
    for line in Path(path).read_text().splitlines():
        row = json.loads(line)
        ids.append(row.pop("id"))
        for k, v in row.items():
            scores.setdefault(k, []).append(np.array(v, dtype=float))
    return ids, scores


def select_prompts(items: list[BonItem], prompts: int | None, seed: int) -> list[BonItem]:
    """A seeded random subset of ``prompts`` items (file order kept), or all of them."""
    import random

    if not prompts or prompts >= len(items):
        return items
    keep = sorted(random.Random(seed).sample(range(len(items)), prompts))
    return [items[i] for i in keep]


def bon_lab(proxies: dict[str, str], data: str | Path, out: str | Path, gold_model: str | None = None,
            win_threshold: float | None = None, prompts: int | None = None, max_candidates: int | None = None,
            n_boot: int = 1000, seed: int = 0, title: str = "best-of-n", **scorer_kwargs) -> dict:
    """What ``rewardlab bon`` runs: read ``data``, pick prompts, load each proxy (and the gold model) with
    :func:`rewardlab.load_scorer` (``scorer_kwargs``: dtype, max_length, batch_tokens, trust), score
    every candidate once, compute the curves and write ``bon.json``, ``scores.jsonl`` and ``bon.png``."""
    from rewardlab import load_scorer
    from rewardlab.bon.data import load_bon_items
    from rewardlab.eval.provenance import provenance

    items, report = load_bon_items(data)
    items, stats = prepare_items(select_prompts(items, prompts, seed), need_gold=gold_model is None,
                                 max_candidates=max_candidates)
    scorers = {name: load_scorer(path, **scorer_kwargs) for name, path in proxies.items()}
    gold_scorer = load_scorer(gold_model, **scorer_kwargs) if gold_model else None
    result, scores = run_bon(scorers, items, gold_scorer, win_threshold=win_threshold, n_boot=n_boot, seed=seed)
    result["gold_source"] = gold_model or "file"
    result["selection"] = {**stats, "prompts_in_file": report.kept, "prompts_requested": prompts,
                           "max_candidates": max_candidates}
    templates = dict(scorers, **({"gold": gold_scorer} if gold_scorer else {}))
    result["provenance"] = provenance({**proxies, **({"gold": gold_model} if gold_model else {})}, {"data": data},
                                      seed, templates, scorer_kwargs={k: v for k, v in scorer_kwargs.items()
                                                                      if k != "progress"}, n_boot=n_boot)
    result["paths"] = {k: str(v) for k, v in write_bon(result, scores, items, out, title=title).items()}
    return result


def format_curve(result: dict) -> str:
    """A text table: n, KL, then per proxy its expected proxy score, gold and (when set) gold win rate."""
    head = ["n", "KL"]
    for name in result["proxies"]:
        head += [f"{name} proxy", f"{name} gold"] + ([f"{name} win%"] if "random_win_rate" in result else [])
    lines = ["  ".join(f"{h:>12}" for h in head)]
    for i, n in enumerate(result["n"]):
        row = [f"{n:>12d}", f"{result['kl'][i]:>12.3f}"]
        for c in result["proxies"].values():
            row += [f"{c['proxy'][i]:>12.4f}", f"{c['gold'][i]:>12.4f}"]
            if "random_win_rate" in result:
                row.append(f"{100 * c['gold_win_rate'][i]:>12.1f}")
        lines.append("  ".join(row))
    return "\n".join(lines)
