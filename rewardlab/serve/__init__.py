"""Serve a reward model over HTTP: ``create_app(scorer, settings)`` (FastAPI), run by uvicorn."""

from rewardlab.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app", "serve"]


def __getattr__(name: str):
    if name in ("create_app", "serve"):  # fastapi is an optional extra: import it only when asked
        from rewardlab.serve import app

        return getattr(app, name)
    raise AttributeError(name)
