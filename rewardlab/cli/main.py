"""``rewardlab VERB ...``: dispatch to the verb modules; known errors end in one clear line."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from rewardlab import __version__

VERBS = ("train", "eval", "score", "export", "variants", "assets", "dtype", "star", "audit", "serve", "rewardbench",
         "suite", "bon", "sample", "pairs")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="rewardlab", description="Train, evaluate and use reward models.")
    parser.add_argument("--version", action="version", version=f"rewardlab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in VERBS:
        importlib.import_module(f"rewardlab.cli.{verb}").add_parser(sub)
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    from rewardlab.assets import AssetError
    from rewardlab.config import ConfigError
    from rewardlab.data import DataError
    from rewardlab.data.encode import EncodeError
    from rewardlab.models.export import ExportError
    from rewardlab.models.safety import CorruptCheckpointError, UnsafeCheckpointError
    from rewardlab.registry import UnknownNameError

    return (
        AssetError,
        ConfigError,
        DataError,
        EncodeError,
        ExportError,
        CorruptCheckpointError,
        UnsafeCheckpointError,
        UnknownNameError,
        FileNotFoundError,
    )


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        from rewardlab.plugins import load_plugins

        load_plugins()  # kinds and variants added from outside (REWARDLAB_PLUGINS)
    except ImportError as e:
        print(f"rewardlab {args.verb}: error: cannot import a plugin: {e}", file=sys.stderr)
        return 2
    try:
        return int(args.run(args) or 0)
    except user_errors() as e:
        print(f"rewardlab {args.verb}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
