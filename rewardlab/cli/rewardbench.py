"""``rewardlab rewardbench --model DIR --data PATH [--out FILE.json]``: RewardBench (v1) scoring."""

from __future__ import annotations

from rewardlab.cli.common import add_common_model_args, add_judge_args


def add_data_args(p, fmt_default: str = "auto") -> None:
    p.add_argument("--format", default=fmt_default,
                   help="record format (auto, explicit, implicit, hh, rewardbench)")
    p.add_argument("--lenient", action="store_true", help="skip bad records, with a counted report")
    p.add_argument("--limit", type=int, default=None, help="use at most this many pairs per data set")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals (recorded in the JSON)")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "rewardbench",
        help="RewardBench (v1) scores: per subset, the four sections, prior sets, both aggregates",
        description="Score a RewardBench-format file or dataset (rows with prompt, chosen, rejected, subset). "
        "Per-subset accuracy counts a tie as a loss (ties are reported); sections are weighted by the official "
        "example counts (math-prm counted as 984 so math and code weigh the same in Reasoning); prior sets "
        "(anthropic_helpful, anthropic_hhh, shp, summarize) are averaged and weigh 0.5. Two aggregates: "
        "score_four_sections (mean of Chat, Chat Hard, Safety, Reasoning) and score_with_prior_sets "
        "((four sections + 0.5 x prior sets) / 4.5). Also: length baselines, length-controlled accuracy, "
        "calibration (ECE, reliability plot) and provenance (model, data hash, template, version, seed).",
    )
    add_common_model_args(p)
    add_judge_args(p)
    p.add_argument("--data", required=True, help="RewardBench-format file, datasets directory, or a dataset id with its split, e.g. "
                   "allenai/reward-bench:filtered (needs the hub)")
    add_data_args(p)
    p.add_argument("--out", default="rewardbench.json",
                   help="results JSON; per-pair scores go to <stem>.pairs.jsonl and the reliability plot to "
                   "<stem>.reliability.png beside it")
    p.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    from rewardlab.cli.common import load_scorer
    from rewardlab.data import load_pairs
    from rewardlab.eval.calibration import plot_reliability
    from rewardlab.eval.pairwise import write_results
    from rewardlab.eval.provenance import dtype_of, provenance
    from rewardlab.eval.rewardbench import format_table
    from rewardlab.eval.suite import evaluate_set

    pairs, report = load_pairs(args.data, format=args.format, lenient=args.lenient, limit=args.limit)
    scorer = load_scorer(args)
    summary, rows = evaluate_set(scorer, pairs, seed=args.seed, rewardbench=True)
    summary["data"] = report.to_dict()
    summary["provenance"] = provenance({"model": args.model}, {"data": args.data}, args.seed, {"model": scorer},
                                       batch_tokens=args.batch_tokens, dtype=dtype_of(scorer))
    out, per_pair = write_results(summary, rows, args.out)
    plot = plot_reliability(summary["calibration"], Path(out).with_name(Path(out).stem + ".reliability.png"),
                            title="P(chosen > rejected)")
    print(format_table(summary["rewardbench"]))
    print(f"results: {out}\nper-pair scores: {per_pair}\nreliability plot: {plot}")
    if report.n_dropped or report.skipped:
        print(f"data: {report.summary()}")
    return 0
