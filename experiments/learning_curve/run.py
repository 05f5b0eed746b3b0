"""Learning curves: held-out accuracy against the number of training pairs, beside the length baseline.

A reward head on frozen SmolLM2 features (the best frozen row of ``experiments/rm_table``: mean-pooled,
linear head) is trained on nested subsets of the gold-labelled AlpacaEval training pairs (whole
instructions in split order, so each subset holds the smaller ones) and scored on the held-out
in-distribution (ID) and out-of-distribution (OOD) pairs; then on HH-RLHF harmless pairs up to its
training pool. Every point reports the length-only baseline on the same pairs and the paired
difference against it; AlpacaEval intervals resample instructions. Features come from
``rewardlab.models.feature_cache``: each text runs through the backbone once for every point (and for
``experiments/bon_heldout``, which reads the same cache). Writes ``README.md``, ``results.json`` and
``curve.png`` here.

    python experiments/learning_curve/run.py                # see --help
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(HERE))  # curve_report.py
sys.path.insert(0, str(HERE.parent / "rm_table"))  # heads.py and the feature helpers of the table (its run.py first)

log = logging.getLogger("learning_curve")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--bon", default=str(SHARED / "alpacaeval-bon16" / "bon16.jsonl.gz"),
                   help="best-of-n samples with gold judgements (the AlpacaEval best-of-16 file)")
    p.add_argument("--hh", default=str(SHARED / "hh-rlhf-harmless" / "test.jsonl.gz"), help="HH-RLHF harmless pairs")
    p.add_argument("--model", default="smollm2", help="the frozen backbone (alias, directory or hub id)")
    p.add_argument("--pooling", default="mean", choices=["last", "mean"])
    p.add_argument("--num-layers", type=int, default=9, help="blocks of the backbone the features come from (0: all)")
    p.add_argument("--head", default="linear", choices=["linear", "mlp"])
    p.add_argument("--max-length", type=int, default=256, help="tokens per text (prompt + response)")
    p.add_argument("--sizes", default="250,500,1000,2000,all", help="AlpacaEval training-set sizes, in pairs")
    p.add_argument("--id-instructions", type=int, default=0,
                   help="held-out ID instructions scored, every pair of each (0: all)")
    p.add_argument("--ood-instructions", type=int, default=40,
                   help="OOD instructions scored, every pair of each (0: all)")
    p.add_argument("--hh-sizes", default="250,500,1000",
                   help="HH-RLHF training-set sizes ('all': the whole pool after holding out; '': skip HH)")
    p.add_argument("--hh-eval", type=int, default=200, help="HH-RLHF pairs held out")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="fraction of each training set's instructions (HH: pairs) the head's grid is chosen on")
    p.add_argument("--min-gap", type=float, default=0.5, help="smallest gold-score gap that makes a pair")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the builder's split of instructions")
    p.add_argument("--seed", type=int, default=0, help="seed of the heads, the HH split and the bootstrap")
    p.add_argument("--runs", default=str(HERE / "runs"), help="where per-point results go")
    p.add_argument("--out", default=str(HERE), help="where README.md, results.json and the plot go")
    return p.parse_args(argv)


def sizes_of(spec: str, pool: int) -> list[int]:
    """Sizes from ``--sizes`` (``all``: the whole pool), each within 1..pool, sorted, without repeats."""
    out = []
    for s in (x.strip() for x in spec.split(",") if x.strip()):
        n = pool if s == "all" else int(s)
        if not 0 < n <= pool:
            raise SystemExit(f"size {s} is not in 1..{pool}")
        out.append(n)
    return sorted(set(out))


def backbone(args):
    """The scorer whose backbone makes the features, and its feature cache (``--pooling``)."""
    from run import backbone_scorer

    from rewardlab.models.feature_cache import FeatureCache, default_root

    scorer = backbone_scorer(args.model, args.max_length, args.num_layers)
    return scorer, FeatureCache(scorer.model, args.pooling, default_root())


def features_of(scorer, cache, pairs):
    """``PairFeatures`` of ``pairs`` (each side's text through the cache)."""
    import torch
    from heads import PairFeatures

    from rewardlab.models.feature_cache import cached_features

    ids = scorer.encode([p.conversation("chosen") for p in pairs] + [p.conversation("rejected") for p in pairs])
    f = cached_features(scorer, ids, cache)
    n = len(pairs)
    return PairFeatures(f[:n], f[n:], torch.tensor([p.margin or 0.0 for p in pairs], dtype=torch.float32))


def fill(scorer, cache, pair_sets) -> dict:
    """Run every text of ``pair_sets`` that the cache lacks through the backbone, once; the CPU and wall
    seconds it took and the tokens computed."""
    from run import Clock

    from rewardlab.models.feature_cache import fill_caches

    clock = Clock()
    seqs = [s for pairs in pair_sets for p in pairs for s in scorer.encode([p.conversation("chosen"),
                                                                           p.conversation("rejected")])]
    computed = fill_caches(scorer, seqs, [cache])
    unique = {tuple(s) for s in seqs}
    return {**clock.read(), "texts": len(unique), "tokens": sum(map(len, unique)), "computed": computed}


def point(args, train, evals: dict, groups, baseline: str, scorer, cache) -> dict:
    """Fit the head on ``train`` (grid on its last instructions) and score every eval set, with the
    ``baseline`` length rule and the paired difference on the same pairs."""
    from heads import fit_and_evaluate
    from run import Clock

    from rewardlab.eval.baselines import length_controlled, length_outcomes
    from rewardlab.eval.pairwise import bootstrap_ci

    clock = Clock()
    order = list(dict.fromkeys(groups(p) for p in train))
    val = set(order[len(order) - max(1, round(args.val_fraction * len(order))):])
    val_idx = np.array([i for i, p in enumerate(train) if groups(p) in val], dtype=int)
    feats = {k: features_of(scorer, cache, v) for k, v in {"train": train, **evals}.items()}
    fitted = fit_and_evaluate(feats["train"], val_idx, {k: feats[k] for k in evals}, args.head, seed=args.seed)
    out = {"train": {"pairs": len(train), "instructions": len(order)}, "choice": fitted["choice"]}
    for name, pairs in evals.items():
        o = fitted["outcomes"][name]
        base = length_outcomes(pairs, baseline)
        g = [groups(p) for p in pairs]
        out[name] = {"accuracy": float(o.mean()), "ci95": bootstrap_ci(o, 2000, args.seed, groups=g),
                     "baseline": float(base.mean()), "baseline_ci95": bootstrap_ci(base, 2000, args.seed, groups=g),
                     "difference": float((o - base).mean()),
                     "difference_ci95": bootstrap_ci(o - base, 2000, args.seed, groups=g),
                     "length_controlled": length_controlled(pairs, o)["length_controlled_accuracy"],
                     "pairs": len(pairs), "instructions": len(set(g))}
    out["cost"] = clock.read()
    return out


def alpaca_curve(args, scorer, cache) -> dict:
    from rewardlab.data.bon_pairs import bon_pairs_from_file, instruction_of, take_instructions, take_pairs

    built = bon_pairs_from_file(args.bon, min_gap=args.min_gap, seed=args.split_seed)
    evals = {"ID": take_instructions(built.heldout, args.id_instructions or None)[0],
             "OOD": take_instructions(built.ood, args.ood_instructions or None)[0]}
    sizes = sizes_of(args.sizes, len(built.train))
    fill_cost = fill(scorer, cache, [take_pairs(built.train, max(sizes))[0], *evals.values()])
    log.info("AlpacaEval features: %s", fill_cost)
    points = {}
    for n in sizes:
        train, _ = take_pairs(built.train, n)
        points[n] = point(args, train, evals, lambda p: instruction_of(p.id), "prefer_longer", scorer, cache)
        log.info("AlpacaEval %d pairs: %s", n, {k: points[n][k]["accuracy"] for k in evals})
    return {"points": points, "features": fill_cost, "stats": built.stats,
            "eval": {k: {"pairs": len(v), "instructions": len({instruction_of(p.id) for p in v})}
                     for k, v in evals.items()}}


def hh_curve(args, scorer, cache) -> dict | None:
    from rewardlab.data import load_pairs, split_pairs

    if not args.hh_sizes.strip():
        return None
    pairs, report = load_pairs(args.hh, format="hh", lenient=True)
    pool, held = split_pairs(pairs, eval_size=args.hh_eval, seed=args.seed)
    sizes = sizes_of(args.hh_sizes, len(pool))
    fill_cost = fill(scorer, cache, [pool[:max(sizes)], held])
    log.info("HH-RLHF features: %s", fill_cost)
    points = {}
    for n in sizes:  # every HH pair has its own prompt: the pair is the cluster
        points[n] = point(args, pool[:n], {"ID": held}, lambda p: p.id, "prefer_shorter", scorer, cache)
        log.info("HH-RLHF %d pairs: %.3f", n, points[n]["ID"]["accuracy"])
    return {"points": points, "features": fill_cost, "data": report.to_dict(), "pool": len(pool)}


def main(argv=None) -> int:
    from rewardlab import jsonout
    from rewardlab.eval.study import start_study

    args = parse_args(argv)
    runs = start_study(args, (args.bon, args.hh), args.runs, ignore=("runs", "out"))
    scorer, cache = backbone(args)
    result = {"args": vars(args), "argv": sys.argv[1:] if argv is None else list(argv),
              "alpacaeval": alpaca_curve(args, scorer, cache), "hh": hh_curve(args, scorer, cache),
              "cache": cache.summary(), "dtype": str(scorer.dtype)}
    (runs / "result.json").write_text(jsonout.dumps(result, indent=2) + "\n")
    from curve_report import write

    write(result, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
