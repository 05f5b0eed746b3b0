"""What the verbs that load a model share: the model flags, the judge flags, the safety check and the
loader (:func:`rewardlab.models.loader.load_scorer` behind one clear error per bad flag)."""

from __future__ import annotations

from rewardlab.choices import DTYPES, ENSEMBLE_REDUCTIONS, IMPLICIT_REDUCTIONS


def add_common_model_args(p) -> None:
    p.add_argument("--model", required=True, help="trained reward model directory")
    p.add_argument("--dtype", default="float32", choices=DTYPES,
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
        choices=ENSEMBLE_REDUCTIONS,
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
    """The Scorer for ``--model`` and the flags of :func:`add_common_model_args` / :func:`add_judge_args`
    (:func:`rewardlab.models.loader.load_scorer`); a path that holds no model, a bad judge spec or a bad
    device is one clear error naming the flag, not a traceback."""
    from rewardlab.config import ConfigError
    from rewardlab.models.loader import load_scorer as load
    from rewardlab.models.scorer import resolve_device

    vet_model(args.model, args.trust_checkpoint)
    if getattr(args, "reference", None):
        vet_model(args.reference, args.trust_checkpoint, "--reference")
    try:
        resolve_device(args.device)
    except ValueError as e:
        raise ConfigError(f"--device: {e}") from None
    generative = bool(getattr(args, "judge", None) or getattr(args, "implicit", None))
    options = {"judge": getattr(args, "judge", None), "implicit": getattr(args, "implicit", None),
               "reference": getattr(args, "reference", None), "beta": getattr(args, "beta", 0.1),
               "max_length": args.max_length, "device": args.device}
    if not generative:
        options.update(reduction=args.reduction, lam=args.ensemble_lambda, batch_tokens=args.batch_tokens,
                       progress=progress)
    try:
        return load(args.model, dtype=args.dtype, trust=args.trust_checkpoint, **options)
    except (ValueError, TypeError) as e:
        if not generative:
            raise
        raise ConfigError(f"--judge/--implicit: {e}") from None
    except OSError as e:
        lines = str(e).strip().splitlines()
        what = "a model" if generative else "a reward model directory"
        raise FileNotFoundError(f"--model {args.model}: not {what} ({lines[0] if lines else type(e).__name__})") from None


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
        choices=IMPLICIT_REDUCTIONS,
        default=None,
        help="score with the DPO implicit reward of --model: ratio = beta*(log pi - log pi_ref) (needs "
        "--reference), sum = beta*log pi, mean = beta*log pi per token",
    )
    p.add_argument("--reference", default=None, help="--implicit ratio: the reference model directory")
    p.add_argument("--beta", type=float, default=0.1, help="--implicit: beta of the implicit reward")
