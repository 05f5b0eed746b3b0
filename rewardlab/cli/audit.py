"""``rewardlab audit --model DIR [--probes all] [--suite FILE.jsonl] [--data CONVS] [--out audit.html]``."""

from __future__ import annotations

from rewardlab.cli.common import add_common_model_args, add_judge_args, load_scorer


def add_parser(sub) -> None:
    p = sub.add_parser(
        "audit",
        help="probe suites and per-token reward traces, as one HTML report",
        description="Run controlled probe suites (pairs differing in one property: length, format, "
        "sycophancy, refusal, over-refusal, presentation order) and report each preference rate with a "
        "95% interval and a verdict; trace the reward of every response token (scalar models: the "
        "head read at every position in one pass; --implicit: beta*log pi/pi_ref per token); write a "
        "self-contained HTML report.",
    )
    add_common_model_args(p)
    add_judge_args(p)
    p.add_argument("--probes", default="all",
                   help="comma list of built-in probes: length, format, sycophancy, refusal, over_refusal, "
                   "order (judges only); 'all' (default) or 'none'")
    p.add_argument("--suite", action="append", default=[], metavar="FILE.jsonl",
                   help="a user probe suite: JSONL lines {suite, prompt, a, b, expected: neutral|a|b} "
                   "(repeatable)")
    p.add_argument("--data", default=None,
                   help="conversations to trace per token (JSONL like 'rewardlab score' reads; default: a few "
                   "probe responses)")
    p.add_argument("--trace-limit", type=int, default=8, help="trace at most this many conversations (0: none)")
    p.add_argument("--include", action="append", default=[], metavar="PATH",
                   help="PNG plots (or folders of them, e.g. eval / best-of-n outputs) to embed (repeatable)")
    p.add_argument("--out", default="audit.html", help="the HTML report")
    p.add_argument("--json", default=None, help="also write the numbers as JSON here")
    p.set_defaults(run=run)


def run(args) -> int:
    from rewardlab import jsonout
    from rewardlab.audit.probes import ProbeError, select_probes
    from rewardlab.config import ConfigError

    if args.trace_limit < 0:
        raise ConfigError(f"--trace-limit must be >= 0, got {args.trace_limit}")
    try:
        probes = select_probes(args.probes, args.suite)
    except ProbeError as e:
        raise ConfigError(str(e)) from None
    from rewardlab.audit.run import audit, write_audit  # heavy imports only once the arguments are sound
    from rewardlab.audit.trace import TraceError

    convs = []
    if args.data:
        from rewardlab.data import load_conversations

        convs = load_conversations(args.data)
    scorer = load_scorer(args, progress=False)
    try:
        result = audit(scorer, probes, convs, args.trace_limit)
    except TraceError as e:
        raise ConfigError(str(e)) from None
    out = write_audit(result, args.out, args.json, args.include, meta={"model": args.model})
    for r in result.probes:
        print(r.verdict)
    if result.trace_note:
        print(f"traces: {result.trace_note}")
    print(jsonout.dumps({"report": str(out), "probes": len(result.probes), "traces": len(result.traces)}))
    return 0
