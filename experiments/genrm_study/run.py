"""The generative reward model study: LLM-as-a-judge, GenRM, CoT-GenRM by STaR, STaR-Rationalizer,
STaR-DPO and the Bradley-Terry baseline, in and out of distribution.

The comparison of Mahan et al. 2024 ("Generative Reward Models") on the data we have: every model
starts from the same instruct model (SmolLM2-135M-Instruct), learns from the same HH-RLHF harmless
pairs, and is evaluated on held-out HH pairs (in-distribution) and on AlpacaEval best-of-16 pairs whose
GPT-4 gold judgements differ clearly (out of distribution). Judges judge both orders of every pair;
their order consistency (how often the verdict survives the swap) is reported next to accuracy.
Writes ``README.md``, ``results.json`` and ``accuracy.png`` into this folder; models and evaluations go
to ``runs/`` (not committed) and a rerun reuses what is finished.

    python experiments/genrm_study/run.py              # default sizes, see --help
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path

from rewardlab import jsonout

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = REPO.parent / "shared" / "data"

# row -> (label, how it is made)
ROWS = {
    "judge": ("LLM-as-a-judge (zero-shot, indicator)", "zero-shot"),
    "judge_cot": ("LLM-as-a-judge (zero-shot, CoT votes)", "zero-shot"),
    "genrm": ("GenRM", "genrm"),
    "star": ("CoT-GenRM (STaR)", "star_sft"),
    "star_rationalizer": ("CoT-GenRM (STaR-Rationalizer)", "star_rationalizer"),
    "star_dpo": ("CoT-GenRM (STaR-DPO)", "star_dpo"),
    "bt": ("Bradley-Terry RM", "bt"),
}
log = logging.getLogger("genrm_study")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--hh", default=str(SHARED / "hh-rlhf-harmless" / "test.jsonl.gz"), help="HH-RLHF harmless transcripts")
    p.add_argument("--bon", default=str(SHARED / "alpacaeval-bon16" / "bon16.jsonl.gz"),
                   help="AlpacaEval best-of-16 samples with gold judgements (OOD pairs)")
    p.add_argument("--model", default="smollm2", help="judge / backbone: smollm2 (embedded), a directory or a hub id")
    p.add_argument("--train-size", type=int, default=48, help="HH training pairs")
    p.add_argument("--id-size", type=int, default=32, help="held-out HH pairs")
    p.add_argument("--ood-size", type=int, default=32, help="OOD pairs sampled (0 = all the rule gives)")
    p.add_argument("--ood-min-gap", type=float, default=0.5, help="OOD rule: gold scores differ by at least this")
    p.add_argument("--rows", default=",".join(ROWS), help=f"rows to run, from: {', '.join(ROWS)}")
    p.add_argument("--max-length", type=int, default=384, help="tokens of a judge prompt (pair included)")
    p.add_argument("--k", type=int, default=4, help="rationales per order (CoT judges, STaR sampling)")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--max-new-tokens", type=int, default=48, help="longest rationale")
    p.add_argument("--iterations", type=int, default=2, help="STaR iterations")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-5, help="judge fine-tuning learning rate")
    p.add_argument("--bt-lr", type=float, default=5e-4, help="Bradley-Terry (LoRA) learning rate")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default=str(HERE / "runs"), help="where models, data subsets and evaluations go")
    p.add_argument("--out", default=str(HERE), help="where README.md, results.json and accuracy.png go")
    return p.parse_args(argv)


def common_overrides(args, train_file: Path, out: Path) -> list[str]:
    return [f"model.path={args.model}", f"data.train={train_file}", "data.format=explicit",
            f"data.max_length={args.max_length}", f"train.epochs={args.epochs}", f"train.batch_size={args.batch_size}",
            f"train.dtype={args.dtype}", f"train.seed={args.seed}", "train.logging_steps=4", f"output_dir={out}"]


def make_scorer(args, row: str, train_file: Path, runs: Path):
    """Train (or reuse) the row's model and return a factory for its Scorer, plus its metrics."""
    from rewardlab import load_scorer
    from rewardlab.config import load_recipe
    from rewardlab.models.judge_scorer import JudgeScorer

    kind = ROWS[row][1]
    if kind == "zero-shot":
        method = {"judge": "indicator", "judge_cot": "cot"}[row]
        extra = {"k": args.k, "temperature": args.temperature, "max_new_tokens": args.max_new_tokens} if method == "cot" else {}

        def zero_shot():
            return JudgeScorer.load(args.model, dtype=args.dtype, max_length=args.max_length, method=method,
                                    kind="llm_judge", seed=args.seed, **extra)

        return zero_shot, {}
    out = runs / row
    metrics_file = out / "metrics.json"
    if not metrics_file.exists():
        overrides = common_overrides(args, train_file, out) + [f"variant.name={kind}"]
        if kind == "bt":
            overrides += ["model.lora_r=16", "model.train_layers=8", f"train.lr={args.bt_lr}"]
        else:
            overrides += [f"train.lr={args.lr}"]
        if kind.startswith("star"):
            overrides += [f"variant.iterations={args.iterations}", f"variant.k={args.k}",
                          f"variant.temperature={args.temperature}", f"variant.max_new_tokens={args.max_new_tokens}",
                          f"variant.sample_cache={runs / 'samples'}"]  # iteration 1 samples once for all STaR rows
        recipe = load_recipe(None, overrides)
        if kind.startswith("star"):
            from rewardlab.train.star import run_star

            run_star(recipe)
        else:
            from rewardlab.train.run import train_reward_model

            train_reward_model(recipe)
    metrics = json.loads(metrics_file.read_text())
    final = metrics["final_model"]

    def trained():
        return load_scorer(final, dtype=args.dtype, max_length=args.max_length, progress=True)

    return trained, metrics


def main(argv=None) -> int:
    args = parse_args(argv)
    from rewardlab.eval.study import cached_eval, id_ood_sets, start_study

    runs = start_study(args, (args.hh, args.bon), args.runs)

    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    for r in rows:
        if r not in ROWS:
            sys.exit(f"--rows: unknown row {r!r}; known: {', '.join(ROWS)}")
    start = time.time()
    data = id_ood_sets(args.hh, args.bon, runs, args.id_size, args.ood_size, [args.train_size], args.seed,
                       args.ood_min_gap)
    train_file = data["train_files"][args.train_size]
    results: dict = {"args": vars(args), "rows": {}, "train_seconds": {}, "star": {}}
    for r in rows:
        log.info("=== %s", r)
        factory, metrics = make_scorer(args, r, train_file, runs)
        results["train_seconds"][r] = metrics.get("train_seconds")
        if (runs / r / "star.jsonl").exists():
            results["star"][r] = [json.loads(line) for line in (runs / r / "star.jsonl").read_text().splitlines() if line]
        cell = {}
        for split, pairs in (("ID", data["id_eval"]), ("OOD", data["ood_eval"])):
            log.info("--- %s: %s (%d pairs)", r, split, len(pairs))
            summary = cached_eval(factory, pairs, runs / r / f"eval_{split}.json", seed=args.seed)
            cell[split] = {k: summary.get(k) for k in ("accuracy", "ci95", "n", "ties", "order_consistency", "unparseable")}
        results["rows"][r] = cell
    results["wall_seconds"] = round(time.time() - start, 1)
    # Every invocation's time is added up in runs/, so a rerun that reuses finished work still reports
    # what building all of it cost.
    wall_log = runs / "wall_seconds.json"
    spent = json.loads(wall_log.read_text()) if wall_log.exists() else []
    spent.append(results["wall_seconds"])
    wall_log.write_text(jsonout.dumps(spent) + "\n")
    results["wall_seconds_all_invocations"] = round(sum(spent), 1)
    results["data"] = {"hh_report": data["hh_report"], "train_pool": data["pool"], "train": args.train_size,
                       "id_eval": len(data["id_eval"]), "ood_eval": len(data["ood_eval"]), "ood_rule": data["ood_stats"]}
    write_report(args, results, rows, argv)
    return 0


def write_report(args, results: dict, rows: list[str], argv) -> None:
    from rewardlab.eval.study import fmt_acc, markdown_table, plot_accuracy

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(jsonout.dumps(results, indent=2) + "\n")
    columns = ["ID", "OOD", "order consistency ID", "order consistency OOD"]
    cells, plot_rows = {}, {}
    for r in rows:
        label, res = ROWS[r][0], results["rows"][r]
        plot_rows[label] = {"ID": res["ID"], "OOD": res["OOD"]}
        for split in ("ID", "OOD"):
            cells[(label, split)] = fmt_acc(res[split])
            oc = res[split].get("order_consistency")
            cells[(label, f"order consistency {split}")] = "—" if oc is None else f"{100 * oc:.1f}"
    plot_accuracy(plot_rows, out / "accuracy.png",
                  title=f"Generative RMs vs BT, {Path(args.model).name}; bars: 95% bootstrap CI")
    command = " ".join(["python experiments/genrm_study/run.py", shlex.join(sys.argv[1:] if argv is None else argv)]).strip()
    d, rule = results["data"], results["data"]["ood_rule"]
    star_lines = []
    for r, its in results["star"].items():
        for it in its:
            star_lines.append(f"- {ROWS[r][0]}, iteration {it.get('iteration')}: "
                              + ", ".join(f"{k} {v}" for k, v in it.items() if k != "iteration" and not isinstance(v, dict)))
    text = f"""# Generative reward models: in- and out-of-distribution accuracy

Written by `experiments/genrm_study/run.py`; every number comes from `results.json` beside this file.

## Command

```bash
{command}
```

Judge / backbone `{args.model}`; {d['train']} HH training pairs; judge prompts cut to {args.max_length} tokens;
CoT judges sample k={args.k} rationales per order (temperature {args.temperature}, at most {args.max_new_tokens}
new tokens); STaR runs {args.iterations} iterations; judge fine-tuning lr {args.lr:g}, {args.epochs:g} epoch(s);
the BT baseline is LoRA r=16 on the last 8 blocks at lr {args.bt_lr:g}. Every judge judges both orders and
averages them. Wall time: {results['wall_seconds_all_invocations'] / 60:.1f} min over every invocation that built `runs/`
({len(json.loads((Path(args.runs) / 'wall_seconds.json').read_text()))} invocation(s); this one {results['wall_seconds'] / 60:.1f} min; finished models and
evaluations in `runs/` are reused).

## Results (accuracy %, 95% bootstrap interval; order consistency %)

{markdown_table([ROWS[r][0] for r in rows], columns, cells)}

![accuracy](accuracy.png)

## Data

- ID: `{Path(args.hh).name}` (lenient: read {d['hh_report']['read']}, kept {d['hh_report']['kept']},
  dropped {d['hh_report']['dropped']}); {d['id_eval']} pairs held out (seed {args.seed}), training on the first
  {d['train']} of the remaining {d['train_pool']}.
- OOD: `{Path(args.bon).name}`, per instruction the two labelled samples with the widest gold gap if it is at
  least {rule['min_gap']}: {rule['pairs']} pairs, {d['ood_eval']} used (seed {args.seed}).

## STaR iterations

{chr(10).join(star_lines) or '- none run'}

## Reading (computed from the results above)

{chr(10).join(reading_lines(args, results, rows))}
"""
    (out / "README.md").write_text(text)
    log.info("wrote %s", out / "README.md")


def reading_lines(args, results: dict, rows: list[str]) -> list[str]:
    """Statements the numbers support: chance, paired differences, order consistency, unparseable verdicts."""
    from rewardlab.eval.study import chance_line, paired_lines

    res = results["rows"]
    lines = [chance_line(res)]
    path = lambda r, split: Path(args.runs) / r / f"eval_{split}.json"  # noqa: E731
    label = lambda r: ROWS[r][0]  # noqa: E731
    for base, what in (("bt", "the Bradley-Terry RM"), ("judge", "the zero-shot indicator judge")):
        if base in res and len(res) > 1:
            lines.append(f"- Each row against {what} (accuracy points, paired bootstrap 95% interval over the same "
                         "pairs; an interval containing 0 cannot tell the two apart):")
            lines += ["  " + line for line in paired_lines(path, base, [r for r in rows if r != base], label)]
    consistency = [(res[r][split]["order_consistency"], r, split) for r in rows for split in ("ID", "OOD")
                   if res[r][split].get("order_consistency") is not None]
    if consistency:
        lo, hi = min(consistency), max(consistency)
        lines.append(f"- Order consistency ranges from {100 * lo[0]:.1f}% ({label(lo[1])}, {lo[2]}) to "
                     f"{100 * hi[0]:.1f}% ({label(hi[1])}, {hi[2]}); a judge whose verdict flips with the order "
                     "scores that pair as a tie after averaging both orders.")
    unparseable = {f"{label(r)} {split}": res[r][split]["unparseable"] for r in rows for split in ("ID", "OOD")
                   if res[r][split].get("unparseable")}
    if unparseable:
        lines.append("- Rationales without a parseable verdict (counted, voted as neither side): "
                     + ", ".join(f"{k} {v}" for k, v in unparseable.items()) + ".")
    for r, its in results["star"].items():
        trend = " → ".join(f"{100 * it['yield']:.1f}%" for it in its)
        no_verdict = [it["parser"].get("no_verdict", 0) for it in its]
        lines.append(f"- {label(r)}: share of sampled training rationales whose verdict matches the label, per iteration: "
                     f"{trend}; rationales with no verdict at all: " + " → ".join(f"{n}/{it['samples']}" for n, it in
                                                                            zip(no_verdict, its, strict=True))
                     + f" (a longer --max-new-tokens than {args.max_new_tokens} leaves fewer cut off).")
    lines.append(f"- Sizes: {results['data']['train']} training pairs and {results['data']['id_eval']} + "
                 f"{results['data']['ood_eval']} evaluation pairs keep this to about an hour on 2 CPU cores; "
                 "the paper trains on thousands of pairs with 7B judges. Larger runs are flags, e.g. "
                 "`--train-size 512 --id-size 200 --ood-size 200 --k 8 --max-new-tokens 128 --iterations 3`.")
    return lines


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
