"""``rewardlab eval --model DIR --data PATH [--out FILE.json]``."""

from __future__ import annotations


def add_common_model_args(p) -> None:
    p.add_argument("--model", required=True, help="trained reward model directory")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="inference precision")
    p.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="truncate sequences to this many tokens (default: never; too long is an error)",
    )
    p.add_argument("--batch-tokens", type=int, default=8192, help="token budget per forward pass")
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow pickle weights / remote code in the checkpoint (runs its code: unsafe)",
    )


def load_scorer(args, progress: bool = True):
    """The ScalarScorer for ``--model``; a path that holds no model is one clear error, not a traceback."""
    from pathlib import Path

    from rewardlab.models.scorer import ScalarScorer

    if str(args.model).startswith(("/", ".", "~")) and not Path(args.model).expanduser().exists():
        raise FileNotFoundError(f"--model {args.model}: no such directory")
    try:
        return ScalarScorer.load(
            args.model,
            dtype=args.dtype,
            trust=args.trust_checkpoint,
            max_length=args.max_length,
            batch_tokens=args.batch_tokens,
            progress=progress,
        )
    except OSError as e:
        lines = str(e).strip().splitlines()
        raise FileNotFoundError(
            f"--model {args.model}: not a reward model directory ({lines[0] if lines else type(e).__name__})"
        ) from None


def add_parser(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="preference accuracy of a reward model on pairs",
        description="Score both sides of every pair; report accuracy (ties count half; also "
        "ties-as-loss), ties, a bootstrap 95%% interval, and per-subset accuracy.",
    )
    add_common_model_args(p)
    p.add_argument("--data", required=True, help="preference pairs (any format rewardlab reads)")
    p.add_argument(
        "--format", default="auto", help="record format (auto, explicit, implicit, hh, rewardbench)"
    )
    p.add_argument("--lenient", action="store_true", help="skip bad records, with a counted report")
    p.add_argument("--limit", type=int, default=None, help="use at most this many pairs")
    p.add_argument(
        "--out", default="eval.json", help="results JSON; per-pair scores go to <stem>.pairs.jsonl beside it"
    )
    p.set_defaults(run=run)


def run(args) -> int:
    import json

    from rewardlab.data import load_pairs
    from rewardlab.eval.pairwise import evaluate_pairs, write_results

    pairs, report = load_pairs(args.data, format=args.format, lenient=args.lenient, limit=args.limit)
    scorer = load_scorer(args)
    summary, rows = evaluate_pairs(scorer, pairs)
    summary["data"] = report.to_dict()
    summary["model"] = args.model
    out, per_pair = write_results(summary, rows, args.out)
    print(json.dumps({k: summary[k] for k in ("accuracy", "n", "ties", "ci95")}))
    print(f"results: {out}\nper-pair scores: {per_pair}")
    if report.n_dropped:
        print(f"dropped: {report.summary()}")
    return 0
