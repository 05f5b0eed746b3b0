"""``rewardlab pairs --data BON.jsonl.gz --out DIR``: gold-labelled pairs split by instruction and source."""

from __future__ import annotations

from rewardlab.data.bon_pairs import ID_SOURCES, OOD_SOURCES


def add_parser(sub) -> None:
    p = sub.add_parser(
        "pairs",
        help="build preference pairs from best-of-n samples with gold judgements, split by instruction",
        description="Every two labelled samples of one instruction whose gold scores differ by at least "
        "--min-gap become a pair (chosen: the higher; margin: the gap; subset: the source). Instructions of "
        "the in-distribution sources go to train or heldout (a seeded split of instruction ids), those of "
        "the out-of-distribution sources to ood; no instruction is in two splits (rewardlab.data.bon_pairs). "
        "Writes train.jsonl, heldout.jsonl, ood.jsonl (explicit format: rewardlab train / eval / suite read "
        "them), bon_heldout_id.jsonl and bon_heldout_ood.jsonl (best-of-n records of the held-out "
        "instructions, for rewardlab bon) and stats.json.",
    )
    p.add_argument("--data", required=True,
                   help="best-of-n records with gold judgements (instruction, samples, gold_preference, dataset), "
                   "e.g. ../shared/data/alpacaeval-bon16/bon16.jsonl.gz")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--min-gap", type=float, default=0.5, help="smallest gold-score gap that makes a pair")
    p.add_argument("--heldout-fraction", type=float, default=0.3,
                   help="fraction of the in-distribution instructions held out for evaluation")
    p.add_argument("--id-sources", default=",".join(ID_SOURCES),
                   help="comma-separated in-distribution sources (the records' dataset field)")
    p.add_argument("--ood-sources", default=",".join(OOD_SOURCES),
                   help="comma-separated out-of-distribution sources (empty: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split of instructions")
    p.set_defaults(run=run)


def _names(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def run(args) -> int:
    from rewardlab.config import ConfigError
    from rewardlab.data.bon_pairs import bon_pairs_from_file, format_stats, settings_problems, write_bon_pairs

    settings = {"min_gap": args.min_gap, "heldout_fraction": args.heldout_fraction,
                "id_sources": _names(args.id_sources), "ood_sources": _names(args.ood_sources)}
    problems = settings_problems(**settings)
    if problems:  # min_gap is --min-gap, and so on
        raise ConfigError("; ".join(problems))
    built = bon_pairs_from_file(args.data, seed=args.seed, **settings)
    paths = write_bon_pairs(built, args.out)
    print(format_stats(built.stats))
    print(f"written to {args.out}: " + ", ".join(p.name for p in paths.values()))
    return 0
