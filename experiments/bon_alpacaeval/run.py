"""Best-of-n on AlpacaEval with a real gold judge: does a rewardlab reward model pick better answers?

The AlpacaEval best-of-16 set (``../shared/data/alpacaeval-bon16/``) holds, for each of 805 instructions,
16 answers sampled from Tulu-2-DPO-13B and, for samples 0..10, GPT-4-turbo's AlpacaEval judgement of the
sample against the GPT-3.5 reference (a float in [1, 2]; > 1.5 is a win). This script trains (or reuses)
a Bradley-Terry reward model on HH-RLHF harmless pairs, scores every labelled sample once with
``rewardlab bon``'s machinery, and reports the gold win rate of the best-of-n choice for n = 1..11
(exact expectation over all size-n subsets, bootstrap 95% intervals over prompts) next to random choice
and the oracle. Writes ``README.md``, ``results.json`` and ``bon.png`` here; models and scores go to
``runs/`` (not committed) and are reused by a rerun.

    python experiments/bon_alpacaeval/run.py                       # defaults: ~25 min per RM on 2 cores
    python experiments/bon_alpacaeval/run.py --prompts 0           # all 805 prompts (about an hour)
    python experiments/bon_alpacaeval/run.py --rm runs/smollm2-hh-bt/final --max-length 512
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path

from rewardlab import jsonout

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = REPO.parent / "shared" / "data"
PUBLISHED = {  # best-of-16 gold win rates on this set, reward-bench (same judge); ../shared/data/README.md
    "random choice (median)": 31.3, "OpenAssistant deberta-v3-large RM": 33.4,
    "oasst-rm-2.1-pythia-1.4b": 38.2, "UltraRM-13b": 49.1, "oracle best-of-11 (gold picks)": 58.9,
}
log = logging.getLogger("bon_alpacaeval")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--bon", default=str(SHARED / "alpacaeval-bon16" / "bon16.jsonl.gz"),
                   help="AlpacaEval best-of-16 samples with gold judgements")
    p.add_argument("--hh", default=str(SHARED / "hh-rlhf-harmless" / "test.jsonl.gz"),
                   help="HH-RLHF harmless transcripts (training pairs for the reward model)")
    p.add_argument("--rm", default=None, help="reuse this trained reward model directory (skips training)")
    p.add_argument("--backbone", default="minilm",
                   help="backbone of the trained RM: minilm (all-MiniLM-L6-v2, embedded), smollm2, a directory")
    p.add_argument("--train-pairs", type=int, default=1024,
                   help="HH pairs read for training, of which --eval-size are held out")
    p.add_argument("--eval-size", type=int, default=256, help="held-out HH pairs (RM accuracy in the report)")
    p.add_argument("--train-max-length", type=int, default=128, help="tokens per training sequence")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--alpaca-rm", action=argparse.BooleanOptionalAction, default=True,
                   help="also train an RM on AlpacaEval gold-gap pairs from the prompts NOT in the scored subset")
    p.add_argument("--alpaca-per-instruction", type=int, default=2,
                   help="gold-gap pairs per held-out instruction (gap >= 0.5) for that RM")
    p.add_argument("--alpaca-max-length", type=int, default=192, help="tokens per training sequence, that RM")
    p.add_argument("--prompts", type=int, default=300,
                   help="seeded random subset of AlpacaEval prompts to score (0 = all 805)")
    p.add_argument("--max-length", type=int, default=256,
                   help="tokens per (instruction, answer) when scoring; longer answers are cut from the right")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples over prompts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default=str(HERE / "runs"), help="where the model and the scores go")
    p.add_argument("--out", default=str(HERE), help="where README.md, results.json and bon.png go")
    return p.parse_args(argv)


def train_rm(args, runs: Path, name: str, data: list[str]) -> tuple[Path, dict]:
    """Train a BT reward model on ``args.backbone`` (skipped when its ``metrics.json`` exists)."""
    from rewardlab.config import load_recipe
    from rewardlab.train.run import train_reward_model

    out = runs / name
    if (out / "metrics.json").exists():
        return out / "final", json.loads((out / "metrics.json").read_text())
    overrides = [
        f"model.path={args.backbone}", "model.lora_r=0", *data, "variant.name=bt", f"train.epochs={args.epochs}",
        f"train.batch_size={args.batch_size}", f"train.lr={args.lr}", "train.dtype=float32",
        f"train.seed={args.seed}", "train.logging_steps=8", f"output_dir={out}",
    ]
    metrics = train_reward_model(load_recipe(None, overrides))
    return out / "final", metrics


def hh_rm(args, runs: Path) -> tuple[Path, dict]:
    return train_rm(args, runs, f"rm-{Path(args.backbone).name}", [
        f"data.train={args.hh}", "data.format=hh", "data.lenient=true", f"data.train_limit={args.train_pairs}",
        f"data.eval_size={args.eval_size}", f"data.max_length={args.train_max_length}"])


def alpaca_rm(args, runs: Path, scored_ids: set[str]) -> tuple[Path, dict, dict]:
    """An RM trained in-domain: gold-gap pairs (two samples whose gold differs by >= 0.5) built only from
    the instructions that are *not* scored, so no scored prompt is seen in training; 64 pairs held out."""
    from rewardlab.data.bon import gold_gap_pairs, load_bon_records
    from rewardlab.eval.study import write_pairs_jsonl

    records, _ = load_bon_records(args.bon)
    rest = [r for r in records if r.id not in scored_ids]
    pairs, stats = gold_gap_pairs(rest, min_gap=0.5, per_instruction=args.alpaca_per_instruction)
    stats["instructions_used"] = len(rest)
    train = write_pairs_jsonl(pairs, runs / "data" / "alpaca_gold_gap.jsonl")
    model, metrics = train_rm(args, runs, f"rm-{Path(args.backbone).name}-alpaca", [
        f"data.train={train}", "data.format=explicit", "data.eval_size=64",
        f"data.max_length={args.alpaca_max_length}"])
    return model, metrics, stats


def score_once(args, name: str, rm: Path, runs: Path) -> Path:
    """Score the selected prompts' labelled samples with one RM (cached); returns its ``scores.jsonl``."""
    from rewardlab.bon.run import bon_lab

    out = runs / "bon" / f"{rm.parent.name}-p{args.prompts}-L{args.max_length}-s{args.seed}"
    if not (out / "scores.jsonl").exists():
        log.info("scoring the labelled AlpacaEval samples with %s", rm)
        t0 = time.time()
        res = bon_lab({name: str(rm)}, args.bon, out, win_threshold=1.5, prompts=args.prompts or None,
                      n_boot=args.n_boot, seed=args.seed, title="AlpacaEval best-of-n", dtype="float32",
                      max_length=args.max_length, progress=True)
        (out / "seconds.json").write_text(jsonout.dumps({"score_seconds": round(time.time() - t0, 1),
                                                      "provenance": res["provenance"]}) + "\n")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for path in (args.bon, *([] if args.rm else [args.hh])):
        if not Path(path).exists():
            sys.exit(f"data not found: {path} (pass --bon / --hh)")
    import numpy as np

    from rewardlab.bon.data import load_bon_items
    from rewardlab.bon.run import bon_curves, prepare_items, read_scores, select_prompts, write_bon

    runs = Path(args.runs)
    items, _ = load_bon_items(args.bon)
    total = len(items)
    items = select_prompts(items, args.prompts or None, args.seed)
    items, _ = prepare_items(items, need_gold=True)  # the labelled samples 0..10, as scored
    rms: dict[str, tuple[Path, dict]] = {}
    if args.rm:
        rms["given RM"] = (Path(args.rm), {})
    else:
        log.info("training the reward model on HH-RLHF harmless pairs")
        rms["HH-trained RM"] = hh_rm(args, runs)
    alpaca_stats = None
    if args.alpaca_rm:
        log.info("training the reward model on AlpacaEval gold-gap pairs of the other instructions")
        model, metrics, alpaca_stats = alpaca_rm(args, runs, {it.id for it in items})
        rms["AlpacaEval-trained RM"] = (model, metrics)
    scores, seconds, prov = {}, {}, None
    for name, (rm, _) in rms.items():
        out = score_once(args, name, rm, runs)
        ids, s = read_scores(out / "scores.jsonl")
        if ids != [it.id for it in items]:
            sys.exit(f"{out}: cached scores are for other prompts; delete it and rerun")
        scores[name], gold = s[name], s["gold"]
        meta = json.loads((out / "seconds.json").read_text())
        seconds[name], prov = meta["score_seconds"], meta["provenance"]
    # every curve from the cached per-candidate scores: no model is run again
    result = bon_curves(scores, gold, win_threshold=1.5, n_boot=args.n_boot, seed=args.seed)
    for name, curve in result["proxies"].items():
        curve["proxy_std"] = float(np.concatenate(scores[name]).std())
        curve["gold_std"] = float(np.concatenate(gold).std())
    result["score_seconds"] = seconds
    result["selection"] = {"prompts_in_file": total, "prompts": len(items), "seed": args.seed}
    result["length_rank_correlation"] = length_correlations(items, scores, gold)
    result["provenance"] = prov
    paths = write_bon(result, {**scores, "gold": gold}, items, runs / "bon" / "combined", title="AlpacaEval best-of-n")
    result["paths"] = {k: str(v) for k, v in paths.items()}
    write_report(args, argv, rms, result, alpaca_stats)
    return 0


def length_correlations(items, scores: dict, gold: list) -> dict:
    """Spearman correlation of each score with the answer's length in characters, pooled over candidates."""
    import numpy as np

    def ranks(x):
        return np.argsort(np.argsort(np.asarray(x)))

    lengths = [len(it.responses[j][-1]["content"]) for it in items for j in range(len(it.responses))]
    out = {name: float(np.corrcoef(ranks(np.concatenate(s)), ranks(lengths))[0, 1]) for name, s in scores.items()}
    out["gold"] = float(np.corrcoef(ranks(np.concatenate(gold)), ranks(lengths))[0, 1])
    return out


def reading(result: dict) -> str:
    """What the numbers say, per proxy, from the numbers themselves (so a rerun cannot contradict it)."""
    rnd, corr = 100 * result["random_win_rate"], result["length_rank_correlation"]
    N = result["n"][-1]
    parts = [f"Random choice wins {rnd:.1f}% and the oracle's best-of-{N} "
             f"{100 * result['oracle']['oracle_win_rate'][-1]:.1f}%."]
    for name, c in result["proxies"].items():
        w = [100 * x for x in c["gold_win_rate"]]
        k = max(range(len(w)), key=w.__getitem__)
        hi = 100 * c["gold_win_rate_ci"][1][-1]
        text = f"{name}: best-of-{N} {w[-1]:.1f}%, highest {w[k]:.1f}% at n = {k + 1}"
        if hi < rnd:
            text += (f"; its best-of-{N} interval lies below random choice (upper end {hi:.1f}%): the more "
                     "candidates it picks from, the further its choice drifts from the gold judgement")
        elif 100 * c["gold_win_rate_ci"][0][-1] > rnd:
            text += "; its best-of-n interval lies above random choice"
        else:
            text += "; within the noise of random choice"
        text += f" (answer-length rank correlation of its scores {corr[name]:+.2f}, of the gold {corr['gold']:+.2f})."
        parts.append(text)
    return " ".join(parts) + "\n"


def write_report(args, argv, rms: dict, result: dict, alpaca_stats: dict | None) -> None:
    import shutil

    out = Path(args.out)
    shutil.copyfile(Path(result["paths"]["plot"]), out / "bon.png")
    models = {name: {"path": str(rm), "heldout": m.get("eval"), "train_seconds": m.get("train_seconds")}
              for name, (rm, m) in rms.items()}
    doc = {"args": vars(args), "reward_models": models, "alpaca_training_pairs": alpaca_stats,
           "published_bo16": PUBLISHED, "bon": result}
    (out / "results.json").write_text(jsonout.dumps(doc, indent=2) + "\n")
    names = list(result["proxies"])
    orc = result["oracle"]
    head = "| n | KL_bon | " + " | ".join(f"{n}: gold win % [95% CI]" for n in names) + " | random | oracle |"
    lines = [head, "|---:|---:|" + "---|" * len(names) + "---:|---:|"]
    for i, n in enumerate(result["n"]):
        cells = []
        for name in names:
            c = result["proxies"][name]
            lo, hi = c["gold_win_rate_ci"][0][i], c["gold_win_rate_ci"][1][i]
            cells.append(f"{100 * c['gold_win_rate'][i]:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]")
        lines.append(f"| {n} | {result['kl'][i]:.3f} | " + " | ".join(cells)
                     + f" | {100 * result['random_win_rate']:.1f} | {100 * orc['oracle_win_rate'][i]:.1f} |")
    rm_lines, fit_lines = [], []
    for name, (rm, m) in rms.items():
        held = m.get("eval") or {}
        acc = (f"held-out accuracy {100 * held['accuracy']:.1f}% on {held['n']} pairs (95% CI "
               f"{100 * held['ci95'][0]:.1f}-{100 * held['ci95'][1]:.1f})" if held.get("accuracy") is not None else "")
        rm_lines.append(f"- **{name}**: `{rm.relative_to(REPO) if rm.is_relative_to(REPO) else rm}`; {acc}; "
                        f"training {m.get('train_seconds', 'n/a')} s, scoring {result['score_seconds'][name]} s.")
        f = result["proxies"][name]["gao_fit"]
        peak = f", peak at KL = {f['kl_peak']:.2f}" if "kl_peak" in f else ""
        fit_lines.append(f"| {name} | {f['alpha']:.4f} | {f['beta']:.4f} | {'-' if f['r2'] is None else format(f['r2'], '.3f')}{peak} |")
    cmd = "python experiments/bon_alpacaeval/run.py" + ("" if argv is None else " " + shlex.join(argv))
    sel, prov = result["selection"], result["provenance"]
    pub = "\n".join(f"| {k} | {v} |" for k, v in PUBLISHED.items())
    alpaca_txt = ""
    if alpaca_stats:
        alpaca_txt = (f"  The AlpacaEval-trained RM learns from {alpaca_stats['pairs']} gold-gap pairs (two samples of one "
                      f"instruction whose gold differs by >= 0.5, at most {args.alpaca_per_instruction} per instruction) "
                      f"built only from the {alpaca_stats['instructions_used']} instructions that are not scored; 64 of "
                      f"them are held out. {args.alpaca_max_length} tokens per training sequence.\n")
    text = f"""# Best-of-n on AlpacaEval with a GPT-4 gold judge

Written by `{cmd}` (the script writes this file, `results.json` and `bon.png`; rerun it to reproduce;
trained models and per-candidate scores are cached under `runs/`, not committed).

**Question.** When a reward model picks the best of n sampled answers, how often does its pick beat the
AlpacaEval reference in GPT-4-turbo's judgement, as n grows?

**Set-up.**
- Candidates: the AlpacaEval best-of-16 set (Tulu-2-DPO-13B samples); only samples 0..10 carry a gold
  judgement, so N = {result['candidates']}. A win is gold preference > 1.5.
- Prompts: {sel['prompts']} of the {sel['prompts_in_file']} instructions, a random subset with seed {args.seed}
  (`--prompts 0` scores all of them). Each (instruction, answer) is truncated to {args.max_length} tokens
  when scoring (answers are long; the cut is at the answer's end). Both choices bound the CPU time: about
  25 minutes per reward model (training + scoring, seconds below) on a shared 2-core machine with other
  jobs running; `--no-alpaca-rm` runs the HH-trained RM alone.
- Reward models: Bradley-Terry on `{args.backbone}` (all-MiniLM-L6-v2, a 22M-parameter encoder, full
  fine-tuning, {args.epochs} epoch, lr {args.lr}, batch {args.batch_size}).
  The HH-trained RM learns from {args.train_pairs - args.eval_size} HH-RLHF harmless pairs ({args.eval_size} held out,
  {args.train_max_length} tokens).
{alpaca_txt}{chr(10).join(rm_lines)}
- Estimator: for each prompt, the exact expected gold win of the RM's best-of-n choice over all C(N, n)
  subsets (order statistics, `rewardlab.bon.estimator`), averaged over prompts; 95% percentile bootstrap
  over prompts ({args.n_boot} resamples). Each candidate is scored once per RM; every n, and this report,
  reuse those scores.

## Result

{chr(10).join(lines)}

![best-of-n](bon.png)

Left: gain over n = 1 of each RM's own score (dashed) and of the gold preference (solid), each in
standard deviations of that score over all candidates, against KL_bon = log n − (n−1)/n.
Right: gold win rate with its 95% band, random choice and the oracle.

Gao et al.'s form fitted to the gold gain, gold(n) − gold(1) = d(α − β·d), d = √KL_bon (least squares):

| proxy | α | β | R² |
|---|---:|---:|---:|
{chr(10).join(fit_lines)}

**Reading.** {reading(result)}
These are small encoders reading truncated answers; the published best-of-16 numbers below use
full-size RMs on all 805 prompts and 16 samples and are context only, not a like-for-like comparison
(this set has gold labels for 11 samples, so the curve stops at n = 11).

| published best-of-16 (reward-bench, same judge, all 805 prompts) | win rate % |
|---|---:|
{pub}

Provenance: rewardlab {prov['rewardlab_version']}, data {prov['data']['data']['hash']}, seed {args.seed},
torch {prov['torch']}, transformers {prov['transformers']}.
"""
    (out / "README.md").write_text(text)
    log.info("wrote %s", out / "README.md")


if __name__ == "__main__":
    sys.exit(main())
