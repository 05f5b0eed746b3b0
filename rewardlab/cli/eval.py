"""``rewardlab eval --model DIR --data PATH [--out FILE.json]``."""

from __future__ import annotations

from rewardlab.cli.common import add_common_model_args, add_judge_args, load_scorer


def add_parser(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="preference accuracy of a reward model on pairs",
        description="Score both sides of every pair; report accuracy (ties count half; also "
        "ties-as-loss), ties, a bootstrap 95% interval, and per-subset accuracy.",
    )
    add_common_model_args(p)
    add_judge_args(p)
    p.add_argument("--data", required=True, help="preference pairs (any format rewardlab reads)")
    p.add_argument(
        "--format", default="auto", help="record format (auto, explicit, implicit, hh, rewardbench)"
    )
    p.add_argument("--lenient", action="store_true", help="skip bad records, with a counted report")
    p.add_argument("--limit", type=int, default=None, help="use at most this many pairs")
    p.add_argument(
        "--out", default="eval.json",
        help="results JSON (default: eval.json in the current directory); per-pair scores go to "
        "<stem>.pairs.jsonl beside it",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from rewardlab import jsonout
    from rewardlab.data import load_pairs
    from rewardlab.eval.pairwise import evaluate_pairs, write_results

    pairs, report = load_pairs(args.data, format=args.format, lenient=args.lenient, limit=args.limit)
    scorer = load_scorer(args)
    summary, rows = evaluate_pairs(scorer, pairs)
    summary["data"] = report.to_dict()
    summary["model"] = args.model
    from rewardlab.eval.provenance import dtype_of, provenance

    summary["provenance"] = provenance({"model": args.model}, {"data": args.data}, 0, {"model": scorer},
                                       batch_tokens=args.batch_tokens, dtype=dtype_of(scorer))
    out, per_pair = write_results(summary, rows, args.out)
    keys = ("accuracy", "n", "ties", "ci95", "order_consistency", "unparseable")
    print(jsonout.dumps({k: summary[k] for k in keys if k in summary}))
    from rewardlab.cli.train import length_line

    print(length_line(summary.get("length")))
    print(f"results: {out}\nper-pair scores: {per_pair}")
    if report.n_dropped or report.skipped:
        print(f"data: {report.summary()}")
    return 0
