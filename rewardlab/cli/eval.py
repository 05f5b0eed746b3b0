"""``rewardlab eval --model DIR --data PATH [--out FILE.json]``."""

from __future__ import annotations


def add_common_model_args(p) -> None:
    p.add_argument("--model", required=True, help="trained reward model directory")
    p.add_argument("--dtype", default="float32", choices=["auto", "float32", "bfloat16"],
                   help="inference precision; auto = bfloat16 where a measurement on the device says it is faster "
                   "(see rewardlab dtype), else float32")
    p.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="truncate sequences to this many tokens (default: never; too long is an error)",
    )
    p.add_argument("--batch-tokens", type=int, default=8192, help="token budget per forward pass")
    p.add_argument("--device", default="auto",
                   help="where the model runs: auto (the GPU when there is one, else the CPU), cpu, cuda or "
                   "cuda:N")
    p.add_argument(
        "--reduction",
        choices=["mean", "min", "mean_minus_std"],
        default=None,
        help="ensembles only: combine member rewards by mean, min or mean - lambda*std "
        "(default: what ensemble.json says)",
    )
    p.add_argument(
        "--ensemble-lambda",
        type=float,
        default=None,
        help="ensembles only: lambda of mean_minus_std (default: what ensemble.json says)",
    )
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow pickle weights / remote code in the checkpoint (runs its code: unsafe)",
    )


def vet_model(path: str, trust: bool, flag: str = "--model") -> None:
    """The check every verb runs on a model before loading it (:func:`rewardlab.models.safety.check_checkpoint`):
    a missing directory, pickle weights or remote code without ``--trust-checkpoint`` end in one line."""
    from rewardlab.assets import resolve_model_path
    from rewardlab.models.safety import ModelNotFoundError, check_checkpoint

    try:
        check_checkpoint(resolve_model_path(path), trust)
    except ModelNotFoundError as e:
        raise ModelNotFoundError(f"{flag}: {e}") from None


def load_scorer(args, progress: bool = True):
    """The Scorer for ``--model`` (a model or an ensemble directory); a path that holds no model is one
    clear error, not a traceback."""
    from rewardlab.config import ConfigError
    from rewardlab.models.ensemble import load_any_scorer
    from rewardlab.models.scorer import resolve_device

    vet_model(args.model, args.trust_checkpoint)
    if getattr(args, "reference", None):
        vet_model(args.reference, args.trust_checkpoint, "--reference")
    try:
        resolve_device(args.device)
    except ValueError as e:
        raise ConfigError(f"--device: {e}") from None
    if getattr(args, "judge", None) or getattr(args, "implicit", None):
        return _load_generative(args)
    try:
        return load_any_scorer(
            args.model,
            dtype=args.dtype,
            trust=args.trust_checkpoint,
            reduction=args.reduction,
            lam=args.ensemble_lambda,
            max_length=args.max_length,
            batch_tokens=args.batch_tokens,
            device=args.device,
            progress=progress,
        )
    except OSError as e:
        lines = str(e).strip().splitlines()
        raise FileNotFoundError(
            f"--model {args.model}: not a reward model directory ({lines[0] if lines else type(e).__name__})"
        ) from None


def _load_generative(args):
    """``--judge SPEC``: ``--model`` (any causal LM or judge directory) as a pairwise judge;
    ``--implicit R``: ``--model`` as a DPO policy whose implicit reward scores responses."""
    from rewardlab.config import ConfigError

    try:
        if args.implicit:
            from rewardlab.models.implicit import DPOImplicitScorer

            return DPOImplicitScorer.load(args.model, args.reference, beta=args.beta, reduction=args.implicit,
                                          dtype=args.dtype, trust=args.trust_checkpoint, max_length=args.max_length,
                                          device=args.device)
        from rewardlab.models.judge_scorer import JudgeScorer, parse_judge_spec

        return JudgeScorer.load(args.model, dtype=args.dtype, trust=args.trust_checkpoint,
                                max_length=args.max_length, device=args.device, **parse_judge_spec(args.judge))
    except (ValueError, TypeError) as e:
        raise ConfigError(f"--judge/--implicit: {e}") from None
    except OSError as e:
        lines = str(e).strip().splitlines()
        raise FileNotFoundError(f"--model {args.model}: not a model ({lines[0] if lines else type(e).__name__})") from None


def add_judge_args(p) -> None:
    p.add_argument(
        "--judge",
        default=None,
        metavar="SPEC",
        help="judge with --model as a pairwise LLM judge: METHOD[:key=value,...], METHOD 'indicator' "
        "(next-token probabilities of the indicators) or 'cot' (k sampled rationales, vote share); keys: "
        "k, temperature, max_new_tokens, prompt (default|ab|FILE.yaml), both_orders, backend, batch_size, "
        "seed, kind. E.g. --model smollm2 --judge indicator (zero-shot), --judge cot:k=8,temperature=0.7. "
        "A judge directory (rewardlab_judge.json) needs no --judge; a spec without METHOD overrides its keys",
    )
    p.add_argument(
        "--implicit",
        choices=["ratio", "sum", "mean"],
        default=None,
        help="score with the DPO implicit reward of --model: ratio = beta*(log pi - log pi_ref) (needs "
        "--reference), sum = beta*log pi, mean = beta*log pi per token",
    )
    p.add_argument("--reference", default=None, help="--implicit ratio: the reference model directory")
    p.add_argument("--beta", type=float, default=0.1, help="--implicit: beta of the implicit reward")


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
