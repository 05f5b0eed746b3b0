"""What stands between a request and the model: the body-size limit, the API key, the schema pages and
the error answers. Every error leaves as JSON ``{"error": ...}``; nothing a client sends crashes the server.

Access rule: with an API key set, every endpoint but ``GET /health`` and the page ``/`` needs
``Authorization: Bearer KEY`` (``/docs``, ``/redoc`` and ``/openapi.json`` included), and ``/health``
says only ``{"status": "ok"}`` to a caller without the key.
"""

from __future__ import annotations

import logging
import secrets
import time

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from rewardlab import jsonout
from rewardlab.data.readers import DataError
from rewardlab.serve.batching import BatcherClosed, QueueFull
from rewardlab.serve.engine import ServeError
from rewardlab.serve.metrics import Metrics
from rewardlab.serve.settings import ServeSettings

log = logging.getLogger(__name__)


class ErrorJSON(JSONResponse):
    """JSON with every non-ASCII character escaped: an error message that quotes client text (a lone
    surrogate, say) can always be written, so the answer is never a broken connection."""

    def render(self, content) -> bytes:
        return jsonout.dumps(content).encode("ascii")  # json's default ensure_ascii escapes the rest


class BodyTooLarge(HTTPException):
    """Raised while the body streams in (FastAPI passes HTTP exceptions through its body parsing)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over the limit of {limit} bytes (--max-body-bytes)")


class LimitsAndMetrics:
    """ASGI middleware: refuses bodies over ``max_body_bytes`` (declared, before any byte is read, or
    streamed, before the body is parsed) and records each request's route, status and latency."""

    def __init__(self, app, settings: ServeSettings, metrics: Metrics) -> None:
        self.app, self.settings, self.metrics = app, settings, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]
        limit = self.settings.max_body_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        self.metrics.in_flight += 1
        try:
            if declared is not None and (not declared.isdigit() or int(declared) > limit):
                status[0] = 413
                resp = ErrorJSON({"error": f"request body over the limit of {limit} bytes (--max-body-bytes)"}, 413)
                return await resp(scope, receive, send)
            seen = [0]

            async def limited_receive():
                msg = await receive()
                if msg["type"] == "http.request":
                    seen[0] += len(msg.get("body", b""))
                    if seen[0] > limit:
                        raise BodyTooLarge(limit)
                return msg

            async def recording_send(msg):
                if msg["type"] == "http.response.start":
                    status[0] = msg["status"]
                await send(msg)

            await self.app(scope, limited_receive, recording_send)
        finally:
            self.metrics.in_flight -= 1
            self.metrics.observe(scope.get("path", ""), status[0], time.perf_counter() - start)


BEARER = HTTPBearer(auto_error=False, description="the server's API key (rewardlab serve --api-key-file FILE, "
                    "or REWARDLAB_API_KEY)")


def key_ok(settings: ServeSettings, creds: HTTPAuthorizationCredentials | None) -> bool:
    """Whether a request may use the model: no key is set, or it sent ``Authorization: Bearer KEY``."""
    if settings.api_key is None:
        return True
    given = (creds.credentials if creds else "").encode()
    return secrets.compare_digest(given, settings.api_key.encode())  # constant time in the key's content


def require_key(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(BEARER)) -> None:  # noqa: B008
    """A FastAPI dependency refusing requests without the app's ``settings.api_key`` (none set: everyone
    passes); the settings are read from ``app.state``."""
    if not key_ok(request.app.state.settings, creds):
        raise ServeError(401, "missing or wrong API key: send 'Authorization: Bearer KEY'",
                         {"WWW-Authenticate": "Bearer"})


def add_docs(app: FastAPI, auth: list) -> None:
    """``/openapi.json``, ``/docs`` and ``/redoc`` under the same key as the model's endpoints (the app
    is built with FastAPI's own, open ones switched off)."""

    @app.get("/openapi.json", include_in_schema=False, dependencies=auth)
    async def schema() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=auth)
    async def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs")

    @app.get("/redoc", include_in_schema=False, dependencies=auth)
    async def redoc():
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - ReDoc")


def add_error_handlers(app: FastAPI) -> None:
    """Every error leaves as JSON ``{"error": ...}`` with its status; nothing crashes the server."""

    @app.exception_handler(ServeError)
    async def _serve_error(_, e: ServeError):
        return ErrorJSON({"error": e.message}, e.status, headers=e.headers)

    @app.exception_handler(DataError)
    async def _bad_input(_, e: DataError):  # the checks every input gets (rewardlab.data.validate)
        return ErrorJSON({"error": str(e)}, 400)

    @app.exception_handler(QueueFull)
    async def _full(_, e: QueueFull):
        return ErrorJSON({"error": f"server busy: {e}; retry later"}, 429, headers={"Retry-After": "1"})

    @app.exception_handler(BatcherClosed)
    async def _closed(_, e: BatcherClosed):
        return ErrorJSON({"error": str(e)}, 503)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_, e: StarletteHTTPException):  # 404, 405, 413 while streaming ...
        return ErrorJSON({"error": str(e.detail)}, e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_, e: RequestValidationError):
        # Only where and what: echoing the input back could hold values JSON cannot write (inf).
        errs = jsonable_encoder([{k: x[k] for k in ("loc", "msg", "type") if k in x} for x in e.errors()])
        first = errs[0] if errs else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return ErrorJSON({"error": f"{where}: {first.get('msg', 'invalid request')}", "detail": errs}, 422)

    @app.exception_handler(Exception)
    async def _crash(_, e: Exception):  # a failure in one request never takes the server down
        log.exception("request failed")
        return ErrorJSON({"error": f"internal error: {type(e).__name__}: {e}"}, 500)
