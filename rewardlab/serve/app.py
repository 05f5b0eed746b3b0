"""The reward-model server: ``create_app(scorer, settings)`` builds it, :func:`serve` runs it with uvicorn.

Endpoints: ``POST /score``, ``/compare``, ``/trace``, ``/get_reward`` (OpenRLHF's remote reward model
protocol), ``GET /health``, ``/metrics`` (Prometheus text) and ``/`` (a page to try the model). Model
work goes through one :class:`DynamicBatcher` worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials

from rewardlab import __version__
from rewardlab.serve import inputs
from rewardlab.serve.batching import DynamicBatcher
from rewardlab.serve.engine import Engine, ServeError
from rewardlab.serve.guard import BEARER, LimitsAndMetrics, add_docs, add_error_handlers, key_ok, require_key
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
from rewardlab.serve.settings import ServeSettings, is_loopback

log = logging.getLogger(__name__)
ERRORS = {code: {"model": ErrorResponse, "description": text} for code, text in (
    (400, "the input cannot be scored (unknown role, invalid text, empty response, wrong endpoint for this model)"),
    (401, "missing or wrong API key"), (413, "body, batch or sequence over the server's limits"),
    (422, "the body does not match the schema"), (429, "the queue is full: retry later"),
    (499, "the client disconnected"), (503, "the server is shutting down"))}


async def _until_disconnected(request: Request) -> None:
    while True:
        msg = await request.receive()
        if msg["type"] == "http.disconnect":
            return


class Dispatch:
    """Hands checked work to the batcher and waits for it; the work of a client that left is dropped."""

    def __init__(self, engine: Engine, batcher: DynamicBatcher) -> None:
        self.engine, self.batcher = engine, batcher

    async def run(self, request: Request, kind: str, items: list, cost: int) -> list:
        self.batcher.start()
        task = asyncio.ensure_future(self.batcher.submit(kind, items, cost))
        watcher = asyncio.ensure_future(_until_disconnected(request))
        try:
            done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                return task.result()
            task.cancel()  # the client left: its queued work is dropped unrun
            raise ServeError(499, "client disconnected")
        finally:
            watcher.cancel()

    async def score(self, request: Request, convs: list, what: str) -> tuple[list[float], list[int]]:
        """Rewards and token counts of checked conversations (``what`` names them in errors)."""
        engine = self.engine
        if not engine.can_score:
            raise ServeError(400, "this model is a pairwise judge with no scalar reward: use POST /compare")
        if engine.ids_path:
            ids = [engine.encode(c, f"{what}[{i}]")[0] for i, c in enumerate(convs)]
            return await self.run(request, "score_ids", ids, sum(map(len, ids))), [len(x) for x in ids]
        lengths = [len(engine.encode(c, f"{what}[{i}]")[0]) for i, c in enumerate(convs)]
        return await self.run(request, "score_convs", convs, sum(lengths)), lengths


def create_app(scorer, settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI app serving ``scorer`` (any :class:`rewardlab.types.Scorer`): its engine, batcher,
    metrics and settings live on ``app.state``, where the routers' handlers read them."""
    settings = settings or ServeSettings()
    engine = Engine(scorer, settings)
    batcher = DynamicBatcher(engine.handlers, engine.batchable, settings.token_budget,
                             settings.max_wait_ms / 1000, settings.max_queue)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        # uvicorn has let in-flight requests finish; the worker drains what is still queued.
        await asyncio.to_thread(batcher.close, settings.graceful_timeout_s)

    app = FastAPI(title="rewardlab reward model server", version=__version__, lifespan=lifespan,
                  description="Scalar rewards, pairwise comparisons and per-token traces of a reward model; "
                  "POST /get_reward speaks OpenRLHF's remote reward model protocol.",
                  docs_url=None, redoc_url=None, openapi_url=None)  # served by add_docs, behind the key
    app.state.scorer, app.state.settings, app.state.engine = scorer, settings, engine
    app.state.batcher, app.state.metrics, app.state.dispatch = batcher, Metrics(), Dispatch(engine, batcher)
    app.add_middleware(LimitsAndMetrics, settings=settings, metrics=app.state.metrics)
    add_docs(app, [Depends(require_key)])
    add_error_handlers(app)
    app.include_router(info)
    app.include_router(model)
    return app


# ---- GET /, /health, /metrics ------------------------------------------------------------------------
info = APIRouter()


def _model_name(state) -> str:
    return state.settings.model_name or type(state.scorer).__name__


@info.get("/", response_class=HTMLResponse, summary="a page to score a response and see its heatmap",
          responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}})
async def page() -> HTMLResponse:
    return HTMLResponse(PAGE)


@info.get("/health", response_model=HealthResponse, response_model_exclude_none=True,
          summary="liveness; with the API key (or none set) also the model, its dtype and what it can do")
async def health(request: Request,
                 creds: HTTPAuthorizationCredentials | None = Depends(BEARER)) -> HealthResponse:  # noqa: B008
    state = request.app.state
    if not key_ok(state.settings, creds):
        return HealthResponse(status="ok")
    engine = state.engine
    return HealthResponse(status="ok", model=_model_name(state), dtype=engine.dtype, version=__version__,
                          is_generative=engine.generative, can_score=engine.can_score,
                          can_trace=engine.traceable, queue_depth=state.batcher.depth)


@info.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(require_key)],
          summary="Prometheus metrics", responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
                                                   401: ERRORS[401]})
async def prom(request: Request) -> PlainTextResponse:
    state = request.app.state
    name = _model_name(state).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    return PlainTextResponse(state.metrics.render(name, state.batcher), media_type="text/plain; version=0.0.4")


# ---- POST /score, /compare, /trace, /get_reward: inputs checked by rewardlab.serve.inputs, encoded by
# the engine, run by the batcher --------------------------------------------------------------------------
model = APIRouter(dependencies=[Depends(require_key)])


@model.post("/score", response_model=ScoreResponse, responses=ERRORS,
            summary="scalar rewards of conversations (messages or plain prompt/response text)")
async def score(body: ScoreRequest, request: Request) -> ScoreResponse:
    state = request.app.state
    convs, what = inputs.score_conversations(body)
    state.engine.check_batch(len(convs), what)
    rewards, lengths = await state.dispatch.score(request, convs, what)
    return ScoreResponse(rewards=rewards, tokens=lengths)


@model.post("/compare", response_model=CompareResponse, responses=ERRORS,
            summary="P(a ≻ b) for pairs of responses to the same prompt")
async def compare(body: CompareRequest, request: Request) -> CompareResponse:
    engine, dispatch = request.app.state.engine, request.app.state.dispatch
    engine.check_batch(len(body.pairs), "pairs")
    prompts, a, b = inputs.compare_triples(body)
    if engine.generative:
        triples = list(zip(prompts, a, b, strict=True))
        for i, conv in enumerate(triples):
            engine.check_chars(sum(len(m["content"]) for part in conv for m in part), f"pairs[{i}]")
        return CompareResponse(probabilities=await dispatch.run(request, "compare", triples, len(prompts)))
    n = len(prompts)
    r, _ = await dispatch.score(request, [[*p, *x] for p, x in zip(prompts * 2, a + b, strict=True)], "pairs")
    return CompareResponse(probabilities=engine.sigmoid_diff(r[:n], r[n:]), rewards_a=r[:n], rewards_b=r[n:])


@model.post("/trace", response_model=TraceResponse, responses=ERRORS, summary="per-token reward of one response")
async def trace(body: TraceRequest, request: Request) -> TraceResponse:
    engine = request.app.state.engine
    if not engine.traceable:
        raise ServeError(400, "this model gives no per-token trace (a judge, or an encoder model)")
    ids, plen = engine.encode(inputs.trace_conversation(body), "trace")
    (t,) = await request.app.state.dispatch.run(request, "trace", [(ids, plen)], len(ids))
    return TraceResponse(reward=t.reward, kind=t.kind, tokens=t.tokens, values=t.values.tolist(),
                         contributions=t.contributions.tolist(), prompt_tokens=plen)


@model.post("/get_reward", response_model=GetRewardResponse, responses=ERRORS,
            summary="OpenRLHF remote reward model protocol: rewards of rendered conversations")
async def get_reward(body: GetRewardRequest, request: Request) -> GetRewardResponse:
    engine = request.app.state.engine
    if not (engine.ids_path and engine.can_score):
        raise ServeError(400, "this model cannot score rendered text (a judge, or no token-level scoring)")
    engine.check_batch(len(body.query), "query")
    ids = [engine.encode_query(q, f"query[{i}]") for i, q in enumerate(inputs.queries(body.query))]
    rewards = await request.app.state.dispatch.run(request, "score_ids", ids, sum(map(len, ids)))
    return GetRewardResponse(rewards=rewards, scores=rewards, extra_logs={})


def serve(scorer, settings: ServeSettings) -> None:
    """Run the app with uvicorn until interrupted; SIGINT/SIGTERM finish in-flight requests first."""
    import uvicorn

    if not is_loopback(settings.host) and settings.api_key is None:  # only with --insecure-no-auth
        log.warning("serving on %s without an API key (--insecure-no-auth): anyone who reaches this address "
                    "can use the model", settings.host)
    config = uvicorn.Config(create_app(scorer, settings), host=settings.host, port=settings.port,
                            timeout_graceful_shutdown=int(settings.graceful_timeout_s) or None,
                            log_level="info", access_log=False)
    uvicorn.Server(config).run()
