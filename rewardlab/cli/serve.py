"""``rewardlab serve --model DIR [--host 127.0.0.1] [--port N] [--api-key-file FILE]``."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from rewardlab.cli.common import add_common_model_args, add_judge_args, load_scorer

KEY_ENV = "REWARDLAB_API_KEY"
log = logging.getLogger("rewardlab")


def add_parser(sub) -> None:
    from rewardlab.fielddocs import field_docs
    from rewardlab.serve.settings import ServeSettings

    p = sub.add_parser(
        "serve",
        help="serve a reward model over HTTP (FastAPI + uvicorn)",
        description="POST /score, /compare, /trace and /get_reward (OpenRLHF's remote reward model protocol); "
        "GET /health, /metrics (Prometheus) and / (a page to try the model); the schema is at /docs and "
        "/openapi.json. Concurrent requests are merged into batches. Give the API key with --api-key-file FILE "
        f"or the environment variable {KEY_ENV}: a key on the command line (--api-key) is visible to every "
        "user of the machine. Without a key the server listens on loopback only, unless --insecure-no-auth.",
    )
    add_common_model_args(p)
    add_judge_args(p)
    docs = field_docs(ServeSettings)
    for f in dataclasses.fields(ServeSettings):
        if f.name == "model_name":
            continue
        flag, help_text = f"--{f.name.replace('_', '-')}", docs.get(f.name, "").replace("%", "%%")
        if str(f.type) == "bool":
            p.add_argument(flag, action="store_true", help=help_text)
            continue
        kind = {"int": int, "float": float}.get(str(f.type).split(" ")[0], str)
        if f.default is not None:
            help_text += f" (default: {f.default})"
        p.add_argument(flag, type=kind, default=f.default, help=help_text, metavar=f.name.upper().split("_")[-1])
    p.add_argument("--api-key-file", default=None, metavar="FILE",
                   help=f"read the API key from the first line of FILE (recommended; or set {KEY_ENV})")
    p.set_defaults(run=run)


def api_key(args) -> str | None:
    """The key from ``--api-key``, ``--api-key-file`` or ``$REWARDLAB_API_KEY`` (at most one of the flags)."""
    from rewardlab.config import ConfigError

    if args.api_key is not None and args.api_key_file is not None:
        raise ConfigError("give the API key once: --api-key or --api-key-file, not both")
    if args.api_key_file is not None:
        try:
            lines = Path(args.api_key_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"--api-key-file {args.api_key_file}: cannot read it ({e})") from None
        key = lines[0].strip() if lines else ""
        if not key:
            raise ConfigError(f"--api-key-file {args.api_key_file}: the file is empty")
        return key
    if args.api_key is not None:
        log.warning("--api-key on the command line is visible to other users (ps); prefer --api-key-file FILE "
                    "or %s", KEY_ENV)
        return args.api_key
    return os.environ.get(KEY_ENV) or None


def run(args) -> int:
    from rewardlab.config import ConfigError
    from rewardlab.serve.settings import ServeSettings

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(ServeSettings) if f.name != "model_name"}
    values["api_key"] = api_key(args)
    try:
        settings = ServeSettings(**values, model_name=str(args.model))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    try:
        from rewardlab.serve.app import serve
    except ImportError as e:
        raise ConfigError(f"serving needs the 'serve' extra: pip install 'rewardlab[serve]' ({e})") from None
    if args.batch_tokens < settings.token_budget:
        args.batch_tokens = settings.token_budget  # one merged batch = one forward pass
    serve(load_scorer(args, progress=False), settings)
    return 0
