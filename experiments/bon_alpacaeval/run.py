"""Best-of-n on AlpacaEval with a real gold judge: does a rewardlab reward model pick better answers?

The AlpacaEval best-of-16 set (``../shared/data/alpacaeval-bon16/``) holds, for each of 805 instructions,
16 answers sampled from Tulu-2-DPO-13B and, for samples 0..10, GPT-4-turbo's AlpacaEval judgement of the
sample against the GPT-3.5 reference (a float in [1, 2]; > 1.5 is a win). This script trains (or reuses)
a Bradley-Terry reward model on HH-RLHF harmless pairs, scores every labelled sample once with
``rewardlab bon``'s machinery, and reports the gold win rate of the best-of-n choice for n = 1..11
(exact expectation over all size-n subsets, bootstrap 95% intervals over prompts) next to random choice
and the oracle. Writes ``README.md``, ``results.json`` and ``bon.png`` here; models and scores go to
``runs/`` (not committed) and are reused by a rerun.

    python experiments/bon_alpacaeval/run.py                       # defaults: about 25 min on 2 cores
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
    p.add_argument("--prompts", type=int, default=300,
                   help="seeded random subset of AlpacaEval prompts to score (0 = all 805)")
    p.add_argument("--max-length", type=int, default=256,
                   help="tokens per (instruction, answer) when scoring; longer answers are cut from the right")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples over prompts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default=str(HERE / "runs"), help="where the model and the scores go")
    p.add_argument("--out", default=str(HERE), help="where README.md, results.json and bon.png go")
    return p.parse_args(argv)


def train_rm(args, runs: Path) -> tuple[Path, dict]:
    """Train the BT reward model (skipped when its ``metrics.json`` exists)."""
    from rewardlab.config import load_recipe
    from rewardlab.train.run import train_reward_model

    out = runs / f"rm-{Path(args.backbone).name}"
    if (out / "metrics.json").exists():
        return out / "final", json.loads((out / "metrics.json").read_text())
    overrides = [
        f"model.path={args.backbone}", "model.lora_r=0", f"data.train={args.hh}", "data.format=hh",
        "data.lenient=true", f"data.train_limit={args.train_pairs}", f"data.eval_size={args.eval_size}",
        f"data.max_length={args.train_max_length}", "variant.name=bt", f"train.epochs={args.epochs}",
        f"train.batch_size={args.batch_size}", f"train.lr={args.lr}", "train.dtype=float32",
        f"train.seed={args.seed}", "train.logging_steps=8", f"output_dir={out}",
    ]
    metrics = train_reward_model(load_recipe(None, overrides))
    return out / "final", metrics


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for path in (args.bon, *([] if args.rm else [args.hh])):
        if not Path(path).exists():
            sys.exit(f"data not found: {path} (pass --bon / --hh)")
    from rewardlab.bon.run import bon_lab

    runs = Path(args.runs)
    start = time.time()
    if args.rm:
        rm, metrics = Path(args.rm), {}
    else:
        log.info("training the reward model on HH-RLHF harmless pairs")
        rm, metrics = train_rm(args, runs)
    train_s = time.time() - start
    tag = f"{rm.parent.name}-p{args.prompts}-L{args.max_length}-s{args.seed}"
    cached = runs / "bon" / tag / "bon.json"
    t0 = time.time()
    if cached.exists():
        result = json.loads(cached.read_text())
    else:
        log.info("scoring the labelled AlpacaEval samples with %s", rm)
        result = bon_lab({"trained RM": str(rm)}, args.bon, runs / "bon" / tag, win_threshold=1.5,
                         prompts=args.prompts or None, n_boot=args.n_boot, seed=args.seed,
                         title="AlpacaEval best-of-n", dtype="float32", max_length=args.max_length,
                         progress=True)
        result["score_seconds"] = round(time.time() - t0, 1)
        cached.write_text(json.dumps(result, indent=2) + "\n")
    write_report(args, argv, rm, metrics, result, train_s)
    return 0


def write_report(args, argv, rm: Path, metrics: dict, result: dict, train_s: float) -> None:
    import shutil

    out = Path(args.out)
    shutil.copyfile(Path(result["paths"]["plot"]), out / "bon.png")
    doc = {"args": vars(args), "reward_model": str(rm), "rm_heldout": metrics.get("eval"),
           "train_seconds": metrics.get("train_seconds"), "published_bo16": PUBLISHED, "bon": result}
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    c = result["proxies"]["trained RM"]
    orc = result["oracle"]
    lines = [
        "| n | KL_bon | gold win rate, best-of-n by the trained RM (95% CI) | random choice | oracle (gold picks) |"
        " E[gold pref.] by the RM |",
        "|---:|---:|---|---:|---:|---:|",
    ]
    for i, n in enumerate(result["n"]):
        lo, hi = c["gold_win_rate_ci"][0][i], c["gold_win_rate_ci"][1][i]
        lines.append(f"| {n} | {result['kl'][i]:.3f} | {100 * c['gold_win_rate'][i]:.1f} [{100 * lo:.1f}, "
                     f"{100 * hi:.1f}] | {100 * result['random_win_rate']:.1f} | "
                     f"{100 * orc['oracle_win_rate'][i]:.1f} | {c['gold'][i]:.4f} |")
    fit = c["gao_fit"]
    held = metrics.get("eval") or {}
    cmd = "python experiments/bon_alpacaeval/run.py" + ("" if argv is None else " " + shlex.join(argv))
    sel = result["selection"]
    prov = result["provenance"]
    pub = "\n".join(f"| {k} | {v} |" for k, v in PUBLISHED.items())
    text = f"""# Best-of-n on AlpacaEval with a GPT-4 gold judge

Written by `{cmd}` (the script writes this file, `results.json` and `bon.png`; rerun it to reproduce).

**Question.** When a reward model picks the best of n sampled answers, how often does the pick beat the
AlpacaEval reference in GPT-4-turbo's judgement, as n grows?

**Set-up.**
- Candidates: the AlpacaEval best-of-16 set (Tulu-2-DPO-13B samples), only samples 0..10, which carry a
  gold judgement, so N = {result['candidates']}. A win is gold preference > 1.5.
- Prompts: {sel['prompts']} of {sel['prompts_read']} instructions, a random subset with seed {args.seed}
  (`--prompts 0` scores all 805). Each (instruction, answer) is truncated to {args.max_length} tokens
  (answers are long; the cut is at the answer's end). Both choices keep the run within about 25 minutes
  on 2 CPU cores.
- Reward model: `{rm}` — {"a Bradley-Terry RM on " + args.backbone + " (full fine-tuning), trained on " + str(args.train_pairs - args.eval_size) + " HH-RLHF harmless pairs, " + str(args.epochs) + " epoch, lr " + str(args.lr) + ", " + str(args.train_max_length) + " tokens" if not args.rm else "reused (--rm)"}.
  Held-out HH accuracy: {f"{100 * held['accuracy']:.1f}% on {held.get('n')} pairs (95% CI {100 * held['ci95'][0]:.1f}-{100 * held['ci95'][1]:.1f})" if held.get('accuracy') is not None else "n/a"}.
- Estimator: for each prompt, the exact expected gold win of the RM's best-of-n choice over all C(N, n)
  subsets (order statistics, `rewardlab.bon.estimator`), averaged over prompts; 95% percentile bootstrap
  over prompts ({args.n_boot} resamples). Each candidate is scored once ({result.get('score_seconds', 'n/a')} s
  for {sel['candidates'] if 'candidates' in sel else sel['prompts'] * result['candidates']} candidates); every n reuses those scores.

## Result

{chr(10).join(lines)}

![best-of-n](bon.png)

Left: gain over n = 1 of the RM's own score (dashed) and of the gold preference (solid), each in
standard deviations of that model's scores over all candidates, against KL_bon = log n − (n−1)/n.
Right: gold win rate with its 95% band, random choice and the oracle.

Gao et al. form fitted to the gold gain, gold(n) − gold(1) = d(α − β·d), d = √KL_bon:
α = {fit['alpha']:.4f}, β = {fit['beta']:.4f}, R² = {fit['r2']:.3f}{f", peak at KL = {fit['kl_peak']:.2f}" if 'kl_peak' in fit else " (β ≤ 0: no peak within the form)"}.

**Reading.** Best-of-11 by the trained RM wins {100 * c['gold_win_rate'][-1]:.1f}% against random choice
{100 * result['random_win_rate']:.1f}% and the oracle {100 * orc['oracle_win_rate'][-1]:.1f}%. The RM was
trained on harmlessness pairs of a different distribution (short HH dialogues) with a 22M-parameter
encoder and scores truncated answers, so it is a weak proxy for GPT-4's helpfulness judgement; the
published numbers below are best-of-16 with full-size RMs and serve as context only (different n:
16 samples of which 5 carry no gold label here, so this report stops at n = 11).

| published best-of-16 (reward-bench, same judge, all 805 prompts) | win rate % |
|---|---:|
{pub}

Provenance: rewardlab {prov['rewardlab_version']}, data {prov['data']['data']['hash']}, seed {prov['seed']},
torch {prov['torch']}, transformers {prov['transformers']}. Training took {metrics.get('train_seconds', 'n/a')} s.
"""
    (out / "README.md").write_text(text)
    log.info("wrote %s", out / "README.md")


if __name__ == "__main__":
    sys.exit(main())
