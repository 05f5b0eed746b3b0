"""``rewardlab suite --model DIR [--model ...] --data NAME=PATH [--data ...] [--out DIR]``."""

from __future__ import annotations

from rewardlab.cli.common import add_common_model_args
from rewardlab.cli.rewardbench import add_data_args


def split_named(spec: str, what: str) -> tuple[str, str]:
    """``NAME=PATH`` -> (NAME, PATH); a bare PATH is named after its file or directory."""
    from pathlib import Path

    name, sep, path = spec.partition("=")
    if sep and name and "/" not in name:
        return name, path
    stem = Path(spec.rstrip("/")).name
    for suffix in (".gz", ".jsonl", ".json", ".parquet"):
        stem = stem.removesuffix(suffix)
    return stem or what, spec


def add_parser(sub) -> None:
    p = sub.add_parser(
        "suite",
        conflict_handler="resolve",
        help="evaluate one or more reward models on several pair sets: one table, one JSON",
        description="For every model and data set: accuracy with a bootstrap 95% interval, the null baselines "
        "(prefer the longer / shorter response) per subset, length-controlled accuracy, calibration (ECE, "
        "reliability plot) and, for sets with RewardBench subsets, the RewardBench sections. Writes "
        "suite.json, table.md, reliability.png and one <model>__<data>.pairs.jsonl per run into --out.",
    )
    add_common_model_args(p)  # its single --model is replaced by a repeatable one (conflict_handler)
    p.add_argument("--model", action="append", required=True,
                   help="reward model directory, optionally named NAME=DIR; repeat for several (loaded in turn)")
    p.add_argument("--data", action="append", required=True,
                   help="a pair set, NAME=PATH or PATH (named after the file); repeat, e.g. --data id=a.jsonl "
                   "--data ood=b.jsonl")
    add_data_args(p)
    p.add_argument("--out", default="suite", help="output directory")
    p.set_defaults(run=run)


def run(args) -> int:
    import argparse

    from rewardlab.cli.common import load_scorer
    from rewardlab.config import ConfigError
    from rewardlab.data import load_pairs
    from rewardlab.eval.provenance import provenance
    from rewardlab.eval.suite import run_suite

    models = dict(split_named(m, "model") for m in args.model)
    data_specs = dict(split_named(d, "data") for d in args.data)
    if len(models) != len(args.model) or len(data_specs) != len(args.data):
        raise ConfigError("suite: two --model or two --data have the same name; name them NAME=PATH")
    datasets = {}
    for name, src in data_specs.items():
        datasets[name], report = load_pairs(src, format=args.format, lenient=args.lenient, limit=args.limit)
        if report.n_dropped or report.skipped:
            print(f"data: {report.summary()}")

    def factory(path: str):
        return lambda: load_scorer(argparse.Namespace(**{**vars(args), "model": path}))

    prov = provenance(models, data_specs, args.seed, batch_tokens=args.batch_tokens,
                      max_length=args.max_length)
    doc = run_suite({n: factory(p) for n, p in models.items()}, datasets, args.out, seed=args.seed, provenance=prov)
    print(doc["table"])
    print(f"results: {args.out}/suite.json, table: {args.out}/table.md, plot: {args.out}/reliability.png")
    return 0
