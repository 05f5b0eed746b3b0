"""Best-of-n on held-out instructions: the best frozen-feature reward model picks among 11 gold-judged samples.

The reward model is the best row of ``experiments/rm_table`` (frozen SmolLM2, mean-pooled features, a
linear Bradley-Terry head), trained on every pair of the training split of ``rewardlab.data.bon_pairs``.
It then picks the best of n = 1..11 samples for held-out in-distribution instructions and for
out-of-distribution ones (koala, vicuna), none of which any training pair came from. A pick wins when
GPT-4's gold preference for it over the AlpacaEval reference is above 1.5. Rows: the reward model, the
length-only picker (the longest answer), random choice and the oracle (gold picks), with KL_bon, the
Gao fit and 95% intervals over prompts; the paired differences at every n (reward model minus random,
minus the length picker) resample prompts once for both sides. Features come from the cache that
``experiments/learning_curve`` fills (same backbone, pooling and length): each text runs through the
backbone at most once. Writes ``README.md``, ``results.json`` and ``bon_id.png`` / ``bon_ood.png`` here.

    python experiments/bon_heldout/run.py
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(HERE.parent / "rm_table"))

log = logging.getLogger("bon_heldout")
WIN = 1.5
"""Gold preference over the reference above which a pick wins (the AlpacaEval judge's scale is 1..2)."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--bon", default=str(SHARED / "alpacaeval-bon16" / "bon16.jsonl.gz"))
    p.add_argument("--model", default="smollm2", help="the frozen backbone (alias, directory or hub id)")
    p.add_argument("--pooling", default="mean", choices=["last", "mean"])
    p.add_argument("--num-layers", type=int, default=9, help="blocks of the backbone the features come from (0: all)")
    p.add_argument("--head", default="linear", choices=["linear", "mlp"])
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--id-instructions", type=int, default=0,
                   help="held-out ID instructions with a gold pair (0: all of them)")
    p.add_argument("--ood-instructions", type=int, default=40, help="OOD instructions with a gold pair (0: all)")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--min-gap", type=float, default=0.5)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--runs", default=str(HERE / "runs"))
    p.add_argument("--out", default=str(HERE))
    return p.parse_args(argv)


def train_head(args, scorer, cache, built):
    """The head on every training pair (grid chosen on the last instructions); returns a function from
    token sequences to rewards and what was chosen."""
    import torch
    from heads import PairFeatures, choose, fit, standardiser
    from run import Clock  # rm_table's

    from rewardlab.data.bon_pairs import instruction_of
    from rewardlab.models.feature_cache import cached_features

    clock = Clock()
    train = built.train
    order = list(dict.fromkeys(instruction_of(p.id) for p in train))
    val = set(order[len(order) - max(1, round(args.val_fraction * len(order))):])
    is_val = np.array([instruction_of(p.id) in val for p in train])
    ids = scorer.encode([p.conversation("chosen") for p in train] + [p.conversation("rejected") for p in train])
    f = cached_features(scorer, ids, cache)
    n = len(train)
    feats = PairFeatures(f[:n], f[n:], torch.zeros(n))
    mean, std = standardiser(feats)
    z = PairFeatures((feats.chosen - mean) / std, (feats.rejected - mean) / std, feats.margin)
    best, _ = choose(z.take(np.where(~is_val)[0]), z.take(np.where(is_val)[0]), args.head, seed=args.seed)
    head = fit(z, args.head, best["lr"], best["weight_decay"], best["epochs"], seed=args.seed)

    @torch.no_grad()
    def reward(seqs) -> np.ndarray:
        x = (cached_features(scorer, seqs, cache) - mean) / std
        return head(x).squeeze(-1).numpy().astype(float)

    return reward, {"choice": best, "train_pairs": n, "train_instructions": len(order), "cost": clock.read()}


def curves(args, records, reward, scorer) -> dict:
    """Scores of every sample, the best-of-n curves of the RM and the length picker, and the paired
    differences at every n."""
    from rewardlab.bon.estimator import paired_best_of_n
    from rewardlab.bon.run import bon_curves

    rm, length, gold = [], [], []
    for r in records:
        idx = r.labelled
        seqs = scorer.encode([r.prompt + r.response(i) for i in idx])
        rm.append(reward(seqs))
        length.append(np.array([len(r.samples[i]) for i in idx], dtype=float))
        gold.append(np.array([r.gold[i] for i in idx], dtype=float))
    sizes = {g.size for g in gold}
    if len(sizes) != 1:
        raise SystemExit(f"instructions have {sorted(sizes)} labelled samples; best-of-n needs one N")
    result = bon_curves({"reward model": rm, "length": length}, gold, win_threshold=WIN,
                        n_boot=args.n_boot, seed=args.seed)
    wins = [(g > WIN).astype(float) for g in gold]
    result["paired"] = {
        "rm_minus_random": paired_best_of_n(rm, None, wins, args.n_boot, args.seed),
        "rm_minus_length": paired_best_of_n(rm, length, wins, args.n_boot, args.seed),
        "length_minus_random": paired_best_of_n(length, None, wins, args.n_boot, args.seed),
    }
    result["instructions"] = [r.id for r in records]
    return result


def main(argv=None) -> int:
    from rewardlab import jsonout
    from rewardlab.bon.plots import plot_bon
    from rewardlab.data.bon_pairs import bon_pairs_from_file, instruction_of, take_instructions
    from rewardlab.eval.study import start_study
    from rewardlab.models.feature_cache import FeatureCache, default_root

    args = parse_args(argv)
    start_study(args, (args.bon,), args.runs, ignore=("runs", "out"))
    from run import Clock, backbone_scorer  # rm_table's

    clock = Clock()
    built = bon_pairs_from_file(args.bon, min_gap=args.min_gap, seed=args.split_seed)
    scorer = backbone_scorer(args.model, args.max_length, args.num_layers)
    cache = FeatureCache(scorer.model, args.pooling, default_root())
    reward, trained = train_head(args, scorer, cache, built)
    by_id = {r.id: r for r in built.bon_heldout_id + built.bon_heldout_ood}
    trained_on = {instruction_of(p.id) for p in built.train}
    result = {"args": vars(args), "argv": sys.argv[1:] if argv is None else list(argv), "trained": trained}
    for split, pairs, n in (("ID", built.heldout, args.id_instructions), ("OOD", built.ood, args.ood_instructions)):
        chosen = list(dict.fromkeys(instruction_of(p.id) for p in take_instructions(pairs, n or None)[0]))
        assert not set(chosen) & trained_on  # held out by construction; checked all the same
        result[split] = curves(args, [by_id[i] for i in chosen], reward, scorer)
        plot_bon(result[split], Path(args.out) / f"bon_{split.lower()}.png",
                 title=f"best-of-n, held-out {split} instructions")
    result["cost"] = clock.read()
    result["cache"] = cache.summary()
    result["dtype"] = str(scorer.dtype)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "results.json").write_text(jsonout.dumps(result, indent=2) + "\n")
    write_readme(result, Path(args.out))
    return 0


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def table(res: dict) -> str:
    rm, ln = res["proxies"]["reward model"], res["proxies"]["length"]
    d_rand, d_len = res["paired"]["rm_minus_random"], res["paired"]["rm_minus_length"]
    lines = ["| n | KL_bon | RM win % [95% CI] | length picker win % | random | oracle | RM − random [CI] | RM − length [CI] |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for k, n in enumerate(res["n"]):
        lines.append(
            f"| {n} | {res['kl'][k]:.3f} | {pct(rm['gold_win_rate'][k])} [{pct(rm['gold_win_rate_ci'][0][k])}, "
            f"{pct(rm['gold_win_rate_ci'][1][k])}] | {pct(ln['gold_win_rate'][k])} | {pct(res['random_win_rate'])} "
            f"| {pct(res['oracle']['oracle_win_rate'][k])} "
            f"| {100 * d_rand['difference'][k]:+.1f} [{100 * d_rand['ci'][0][k]:+.1f}, {100 * d_rand['ci'][1][k]:+.1f}] "
            f"| {100 * d_len['difference'][k]:+.1f} [{100 * d_len['ci'][0][k]:+.1f}, {100 * d_len['ci'][1][k]:+.1f}] |")
    return "\n".join(lines)


def verdict(res: dict, split: str) -> str:
    d_rand, d_len = res["paired"]["rm_minus_random"], res["paired"]["rm_minus_length"]
    k = len(res["n"]) - 1
    n = res["n"][k]

    def says(d):
        lo, hi = d["ci"][0][k], d["ci"][1][k]
        return f"{100 * d['difference'][k]:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}]" + (
            " (interval above 0)" if lo > 0 else " (interval below 0)" if hi < 0 else " (interval includes 0)")

    return (f"- {split}, n = {n} ({res['prompts']} instructions): reward model minus random {says(d_rand)}; "
            f"minus the length picker {says(d_len)}.")


def write_readme(result: dict, out: Path) -> None:
    from rewardlab.precision import cpu_name

    a = result["args"]
    t = result["trained"]
    cmd = "python experiments/bon_heldout/run.py" + "".join(" " + shlex.quote(x) for x in result["argv"])
    text = ["# Best-of-n on held-out instructions", "",
            "Written by `experiments/bon_heldout/run.py`; every number below is in `results.json` beside this file.", "",
            "```bash", cmd, "```", "",
            f"CPU: {cpu_name()}. This run: {result['cost']['cpu_s'] / 60:.1f} CPU-min, {result['cost']['wall_s'] / 60:.1f} "
            f"wall-min ({result['cache']['computed']} texts through the backbone, {result['cache']['from_cache']} from the "
            "feature cache that `experiments/learning_curve` fills).", "",
            "## Set-up", "",
            f"- **Reward model**: frozen `{a['model']}` (its first {a['num_layers'] or 'all'} blocks), `{a['pooling']}`-pooled features over {a['max_length']} tokens "
            f"({result['dtype']}), a `{a['head']}` Bradley-Terry head on standardised features, trained on every pair of "
            f"the training split: {t['train_pairs']} pairs from {t['train_instructions']} instructions (gold gap >= "
            f"{a['min_gap']}); settings chosen on the last {pct(a['val_fraction'])}% of them: {t['choice']}.",
            f"- **Candidates**: the 11 gold-judged samples of each instruction. ID: {result['ID']['prompts']} held-out "
            f"instructions of selfinstruct / oasst / helpful_base; OOD: {result['OOD']['prompts']} koala / vicuna "
            "instructions; in both, every instruction has at least one pair with a gold gap (the ones the accuracy "
            "tables score), and none is a training instruction.",
            f"- **Win**: gold preference over the AlpacaEval reference > {WIN}. Expected win of the best-of-n pick over "
            "all C(11, n) subsets (`rewardlab.bon.estimator`); 95% percentile bootstrap over prompts; the paired "
            "differences resample prompts once for both sides. Length picker: the longest answer wins.", ""]
    for split in ("ID", "OOD"):
        res = result[split]
        fit = res["proxies"]["reward model"].get("gao_fit") or {}
        text += [f"## {split}", "", table(res), "",
                 f"Gao fit of the RM's gold gain: α = {fit.get('alpha', float('nan')):.3f}, "
                 f"β = {fit.get('beta', float('nan')):.3f}, R² = {fit.get('r2') if fit.get('r2') is None else round(fit['r2'], 3)}.",
                 "", f"![best-of-n {split}](bon_{split.lower()}.png)", ""]
    text += ["## Where this stands", "", verdict(result["ID"], "ID"), verdict(result["OOD"], "OOD"), ""]
    (out / "README.md").write_text("\n".join(text))


if __name__ == "__main__":
    sys.exit(main())
