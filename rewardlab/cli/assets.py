"""``rewardlab assets [smollm2|minilm]``: prepare an embedded model and print its directory."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("assets", help="prepare an embedded model (converts SmolLM2 once) and print its path")
    p.add_argument("name", choices=["smollm2", "minilm"], help="embedded model alias")
    p.add_argument("--refresh", action="store_true", help="convert again even if cached")
    p.set_defaults(run=run)


def run(args) -> int:
    from rewardlab.assets import minilm_path, smollm2_path

    print(smollm2_path(refresh=args.refresh) if args.name == "smollm2" else minilm_path())
    return 0
