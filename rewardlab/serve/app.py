"""The reward-model server: ``create_app(scorer, settings)`` builds it, :func:`serve` runs it with uvicorn.

Endpoints: ``POST /score``, ``/compare``, ``/trace``, ``/get_reward`` (OpenRLHF's remote reward model
protocol), ``GET /health``, ``/metrics`` (Prometheus text) and ``/`` (a page to try the model). Model
work goes through one :class:`DynamicBatcher` worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from rewardlab import __version__
from rewardlab.serve.batching import BatcherClosed, DynamicBatcher, QueueFull
from rewardlab.serve.engine import Engine, ServeError, turns
from rewardlab.serve.metrics import Metrics
from rewardlab.serve.page import PAGE
from rewardlab.serve.protocol import (
    CompareRequest,
    CompareResponse,
    ErrorResponse,
    GetRewardRequest,
    GetRewardResponse,
    HealthResponse,
    ScoreRequest,
    ScoreResponse,
    TraceRequest,
    TraceResponse,
)
from rewardlab.serve.settings import ServeSettings

log = logging.getLogger(__name__)
ERRORS = {code: {"model": ErrorResponse, "description": text} for code, text in (
    (400, "the input cannot be scored (bad conversation, wrong endpoint for this model)"),
    (401, "missing or wrong API key"), (413, "body, batch or sequence over the server's limits"),
    (422, "the body does not match the schema"), (429, "the queue is full: retry later"),
    (499, "the client disconnected"), (503, "the server is shutting down"))}


class BodyTooLarge(HTTPException):
    """Raised while the body streams in (FastAPI passes HTTP exceptions through its body parsing)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over the limit of {limit} bytes (--max-body-bytes)")


class LimitsAndMetrics:
    """ASGI middleware: refuses bodies over ``max_body_bytes`` (declared or streamed) and records each
    request's route, status and latency."""

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
                resp = JSONResponse({"error": f"request body over the limit of {limit} bytes (--max-body-bytes)"},
                                    413)
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


async def _until_disconnected(request: Request) -> None:
    while True:
        msg = await request.receive()
        if msg["type"] == "http.disconnect":
            return


def _key_checker(settings: ServeSettings):
    """A FastAPI dependency refusing requests without ``settings.api_key`` (none set: everyone passes)."""
    bearer = HTTPBearer(auto_error=False, description="the key given to `rewardlab serve --api-key`")

    def require_key(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:  # noqa: B008
        if settings.api_key is None:
            return
        given = (creds.credentials if creds else "").encode()
        if not secrets.compare_digest(given, settings.api_key.encode()):  # constant time in the key's content
            raise ServeError(401, "missing or wrong API key: send 'Authorization: Bearer KEY'",
                             {"WWW-Authenticate": "Bearer"})

    return require_key


def _add_error_handlers(app: FastAPI) -> None:
    """Every error leaves as JSON ``{"error": ...}`` with its status; nothing crashes the server."""

    @app.exception_handler(ServeError)
    async def _serve_error(_, e: ServeError):
        return JSONResponse({"error": e.message}, e.status, headers=e.headers)

    @app.exception_handler(QueueFull)
    async def _full(_, e: QueueFull):
        return JSONResponse({"error": f"server busy: {e}; retry later"}, 429, headers={"Retry-After": "1"})

    @app.exception_handler(BatcherClosed)
    async def _closed(_, e: BatcherClosed):
        return JSONResponse({"error": str(e)}, 503)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_, e: StarletteHTTPException):  # 404, 405, 413 while streaming ...
        return JSONResponse({"error": str(e.detail)}, e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_, e: RequestValidationError):
        # Only where and what: echoing the input back could hold values JSON cannot write (inf).
        errs = jsonable_encoder([{k: x[k] for k in ("loc", "msg", "type") if k in x} for x in e.errors()])
        first = errs[0] if errs else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}", "detail": errs}, 422)

    @app.exception_handler(Exception)
    async def _crash(_, e: Exception):  # a failure in one request never takes the server down
        log.exception("request failed")
        return JSONResponse({"error": f"internal error: {type(e).__name__}: {e}"}, 500)


def create_app(scorer, settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI app serving ``scorer`` (any :class:`rewardlab.types.Scorer`)."""
    settings = settings or ServeSettings()
    engine = Engine(scorer, settings)
    batcher = DynamicBatcher(engine.handlers, engine.batchable, settings.token_budget,
                             settings.max_wait_ms / 1000, settings.max_queue)
    metrics = Metrics()
    model_name = settings.model_name or type(scorer).__name__

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        # uvicorn has let in-flight requests finish; the worker drains what is still queued.
        await asyncio.to_thread(batcher.close, settings.graceful_timeout_s)

    app = FastAPI(title="rewardlab reward model server", version=__version__, lifespan=lifespan,
                  description="Scalar rewards, pairwise comparisons and per-token traces of a reward model; "
                  "POST /get_reward speaks OpenRLHF's remote reward model protocol.")
    app.state.scorer, app.state.settings, app.state.batcher, app.state.metrics = scorer, settings, batcher, metrics
    app.add_middleware(LimitsAndMetrics, settings=settings, metrics=metrics)
    auth = [Depends(_key_checker(settings))]

    _add_error_handlers(app)

    async def run(request: Request, kind: str, items: list, cost: int) -> list:
        batcher.start()
        task = asyncio.ensure_future(batcher.submit(kind, items, cost))
        watcher = asyncio.ensure_future(_until_disconnected(request))
        try:
            done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                return task.result()
            task.cancel()  # the client left: its queued work is dropped unrun
            raise ServeError(499, "client disconnected")
        finally:
            watcher.cancel()

    def convs_of(body: ScoreRequest) -> list:
        if body.conversations is not None:
            if body.prompts is not None or body.responses is not None:
                raise ServeError(422, "send either 'conversations' or 'prompts' + 'responses', not both")
            engine.check_batch(len(body.conversations), "conversations")
            return [turns(c, "user") for c in body.conversations]
        if body.prompts is None or body.responses is None:
            raise ServeError(422, "send 'conversations', or 'prompts' and 'responses'")
        if len(body.prompts) != len(body.responses):
            raise ServeError(422, f"'prompts' has {len(body.prompts)} items but 'responses' {len(body.responses)}")
        engine.check_batch(len(body.prompts), "prompts")
        return [[*turns(p, "user"), *turns(r, "assistant")] for p, r in zip(body.prompts, body.responses, strict=True)]

    async def score_convs(request: Request, convs: list, what: str) -> tuple[list[float], list[int]]:
        if not engine.can_score:
            raise ServeError(400, "this model is a pairwise judge with no scalar reward: use POST /compare")
        if engine.ids_path:
            ids = [engine.encode(c, f"{what}[{i}]")[0] for i, c in enumerate(convs)]
            return await run(request, "score_ids", ids, sum(map(len, ids))), [len(x) for x in ids]
        lengths = [len(engine.encode(c, f"{what}[{i}]")[0]) for i, c in enumerate(convs)]
        return await run(request, "score_convs", convs, sum(lengths)), lengths

    @app.get("/", response_class=HTMLResponse, summary="a page to score a response and see its heatmap",
             responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}})
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE)

    @app.get("/health", response_model=HealthResponse, summary="liveness and what the model can do")
    async def health() -> HealthResponse:
        return HealthResponse(status="ok", model=model_name, version=__version__, is_generative=engine.generative,
                              can_score=engine.can_score, can_trace=engine.traceable, queue_depth=batcher.depth)

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=auth, summary="Prometheus metrics",
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, 401: ERRORS[401]})
    async def prom() -> PlainTextResponse:
        name = model_name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
        return PlainTextResponse(metrics.render(name, batcher), media_type="text/plain; version=0.0.4")

    @app.post("/score", response_model=ScoreResponse, dependencies=auth, responses=ERRORS,
              summary="scalar rewards of conversations (messages or plain prompt/response text)")
    async def score(body: ScoreRequest, request: Request) -> ScoreResponse:
        rewards, lengths = await score_convs(request, convs_of(body), "conversations")
        return ScoreResponse(rewards=rewards, tokens=lengths)

    @app.post("/compare", response_model=CompareResponse, dependencies=auth, responses=ERRORS,
              summary="P(a ≻ b) for pairs of responses to the same prompt")
    async def compare(body: CompareRequest, request: Request) -> CompareResponse:
        engine.check_batch(len(body.pairs), "pairs")
        prompts = [turns(x.prompt, "user") for x in body.pairs]
        a = [turns(x.a, "assistant") for x in body.pairs]
        b = [turns(x.b, "assistant") for x in body.pairs]
        if engine.generative:
            return CompareResponse(probabilities=await run(request, "compare", list(zip(prompts, a, b, strict=True)),
                                                            len(prompts)))
        n = len(prompts)
        r, _ = await score_convs(request, [[*p, *x] for p, x in zip(prompts * 2, a + b, strict=True)], "pairs")
        return CompareResponse(probabilities=engine.sigmoid_diff(r[:n], r[n:]), rewards_a=r[:n], rewards_b=r[n:])

    @app.post("/trace", response_model=TraceResponse, dependencies=auth, responses=ERRORS,
              summary="per-token reward of one response")
    async def trace(body: TraceRequest, request: Request) -> TraceResponse:
        if not engine.traceable:
            raise ServeError(400, "this model gives no per-token trace (a judge, or an encoder model)")
        if body.messages is not None:
            if body.response is not None:
                raise ServeError(422, "send either 'messages' or 'prompt' + 'response', not both")
            conv = turns(body.messages, "user")
        elif body.response is not None:
            conv = [*turns(body.prompt, "user"), *turns(body.response, "assistant")]
        else:
            raise ServeError(422, "send 'messages', or 'prompt' and 'response'")
        ids, plen = engine.encode(conv, "trace")
        (t,) = await run(request, "trace", [(ids, plen)], len(ids))
        return TraceResponse(reward=t.reward, kind=t.kind, tokens=t.tokens, values=t.values.tolist(),
                             contributions=t.contributions.tolist(), prompt_tokens=plen)

    @app.post("/get_reward", response_model=GetRewardResponse, dependencies=auth, responses=ERRORS,
              summary="OpenRLHF remote reward model protocol: rewards of rendered conversations")
    async def get_reward(body: GetRewardRequest, request: Request) -> GetRewardResponse:
        if not (engine.ids_path and engine.can_score):
            raise ServeError(400, "this model cannot score rendered text (a judge, or no token-level scoring)")
        engine.check_batch(len(body.query), "query")
        ids = [engine.encode_query(q, f"query[{i}]") for i, q in enumerate(body.query)]
        rewards = await run(request, "score_ids", ids, sum(map(len, ids)))
        return GetRewardResponse(rewards=rewards, scores=rewards, extra_logs={})

    return app


def serve(scorer, settings: ServeSettings) -> None:
    """Run the app with uvicorn until interrupted; SIGINT/SIGTERM finish in-flight requests first."""
    import uvicorn

    if settings.host not in ("127.0.0.1", "localhost", "::1") and settings.api_key is None:
        log.warning("serving on %s without --api-key: anyone who reaches this address can use the model",
                    settings.host)
    config = uvicorn.Config(create_app(scorer, settings), host=settings.host, port=settings.port,
                            timeout_graceful_shutdown=int(settings.graceful_timeout_s) or None,
                            log_level="info", access_log=False)
    uvicorn.Server(config).run()
