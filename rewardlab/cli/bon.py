"""``rewardlab bon --proxy DIR [--proxy DIR2 ...] --data PATH [--gold-model DIR] [--out DIR]``."""

from __future__ import annotations

from rewardlab.choices import DTYPES


def add_scorer_args(p) -> None:
    p.add_argument("--dtype", default="float32", choices=DTYPES,
                   help="inference precision; auto = bfloat16 where a measurement on the device says it is faster "
                   "(see rewardlab dtype), else float32")
    p.add_argument("--max-length", type=int, default=None,
                   help="truncate each (prompt, candidate) to this many tokens (default: never; too long is an error)")
    p.add_argument("--batch-tokens", type=int, default=8192, help="token budget per forward pass")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="allow pickle weights / remote code in the checkpoints (runs their code: unsafe)")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bon",
        help="best-of-n: expected proxy and gold value of the best-of-n choice for n = 1..N, several proxies",
        description="Score every candidate once with each proxy reward model; for n = 1..N compute the expected "
        "proxy and gold value of the proxy's best-of-n choice over all size-n subsets (exact, order statistics; "
        "ties go to the earlier candidate), with bootstrap 95% intervals over prompts, against KL_bon = "
        "log n - (n-1)/n, and fit gold - gold(n=1) = d(alpha - beta d), d = sqrt(KL). Gold comes from the file "
        "(candidates without gold are dropped) or from --gold-model. Writes bon.json, scores.jsonl, bon.png.",
    )
    p.add_argument("--proxy", action="append", required=True,
                   help="proxy reward model directory, optionally NAME=DIR; repeat to compare several on one plot")
    p.add_argument("--data", required=True,
                   help="best-of-n records: prompt + responses (+ gold), or the AlpacaEval best-of-16 shape "
                   "(instruction, samples, gold_preference)")
    p.add_argument("--gold-model", default=None,
                   help="reward model directory whose scores are the gold signal (default: the file's gold)")
    p.add_argument("--win-threshold", type=float, default=None,
                   help="also report the gold win rate, P(gold > this) (AlpacaEval best-of-16: 1.5)")
    p.add_argument("--prompts", type=int, default=None, help="use a seeded random subset of this many prompts")
    p.add_argument("--max-candidates", type=int, default=None, help="use at most this many candidates per prompt")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (over prompts) per interval")
    p.add_argument("--seed", type=int, default=0, help="seed of the prompt subset and the bootstrap")
    p.add_argument("--title", default="best-of-n", help="plot title")
    add_scorer_args(p)
    p.add_argument("--out", default="bon", help="output directory")
    p.set_defaults(run=run)


def run(args) -> int:
    from rewardlab.bon.run import bon_lab, format_curve
    from rewardlab.cli.common import vet_model
    from rewardlab.cli.suite import split_named
    from rewardlab.config import ConfigError

    proxies = dict(split_named(s, "proxy") for s in args.proxy)
    if len(proxies) != len(args.proxy):
        raise ConfigError("bon: two --proxy have the same name; name them NAME=DIR")
    for path in proxies.values():
        vet_model(path, args.trust_checkpoint, "--proxy")
    if args.gold_model:
        vet_model(args.gold_model, args.trust_checkpoint, "--gold-model")
    result = bon_lab(proxies, args.data, args.out, gold_model=args.gold_model, win_threshold=args.win_threshold,
                     prompts=args.prompts, max_candidates=args.max_candidates, n_boot=args.n_boot, seed=args.seed,
                     title=args.title, dtype=args.dtype, max_length=args.max_length, batch_tokens=args.batch_tokens,
                     trust=args.trust_checkpoint)
    print(format_curve(result))
    for name, c in result["proxies"].items():
        fit = c["gao_fit"]
        if fit:
            r2 = "undefined" if fit["r2"] is None else f"{fit['r2']:.3f}"
            print(f"{name}: Gao fit alpha={fit['alpha']:.4f} beta={fit['beta']:.4f} R2={r2}")
    print(f"prompts {result['prompts']}, candidates per prompt {result['candidates']}")
    print("results: {json}\nscores: {scores}\nplot: {plot}".format(**result["paths"]))
    return 0
