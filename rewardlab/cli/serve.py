"""``rewardlab serve --model DIR [--host 127.0.0.1] [--port N] [--api-key KEY]``."""

from __future__ import annotations

import dataclasses
import os

from rewardlab.cli.eval import add_common_model_args, add_judge_args, load_scorer


def add_parser(sub) -> None:
    from rewardlab.config import field_docs
    from rewardlab.serve.settings import ServeSettings

    p = sub.add_parser(
        "serve",
        help="serve a reward model over HTTP (FastAPI + uvicorn)",
        description="POST /score, /compare, /trace and /get_reward (OpenRLHF's remote reward model protocol); "
        "GET /health, /metrics (Prometheus) and / (a page to try the model); the schema is at /docs. "
        "Concurrent requests are merged into batches. The API key may also come from REWARDLAB_API_KEY.",
    )
    add_common_model_args(p)
    add_judge_args(p)
    docs = field_docs(ServeSettings)
    for f in dataclasses.fields(ServeSettings):
        if f.name == "model_name":
            continue
        kind = {"int": int, "float": float}.get(str(f.type).split(" ")[0], str)
        default = f.default
        help_text = docs.get(f.name, "").replace("%", "%%")
        if default is not None:
            help_text += f" (default: {default})"
        p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=default, help=help_text,
                       metavar=f.name.upper().split("_")[-1])
    p.set_defaults(run=run)


def run(args) -> int:
    from rewardlab.config import ConfigError
    from rewardlab.serve.settings import ServeSettings

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(ServeSettings) if f.name != "model_name"}
    values["api_key"] = values["api_key"] or os.environ.get("REWARDLAB_API_KEY") or None
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
