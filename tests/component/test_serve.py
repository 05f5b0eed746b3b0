"""The reward-model server in process: every endpoint, auth, limits, the OpenRLHF protocol, batching."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from rewardlab.models.base import BaseScorer
from rewardlab.models.scorer import ScalarScorer  # noqa: E402
from rewardlab.serve.app import create_app  # noqa: E402
from rewardlab.serve.settings import ServeSettings  # noqa: E402
from tests.fp32 import forward_terms, fp32_atol  # noqa: E402
from tests.rm_helpers import make_tiny_rm  # noqa: E402

CONV = [{"role": "user", "content": "what is the capital of france ?"},
        {"role": "assistant", "content": "paris is the capital"}]


@pytest.fixture(scope="module")
def rm_dir(tiny_llama, tmp_path_factory):
    return make_tiny_rm(tiny_llama, tmp_path_factory.mktemp("serve-rm"))


@pytest.fixture(scope="module")
def scorer(rm_dir):
    return ScalarScorer.load(rm_dir)


@pytest.fixture(scope="module")
def atol(scorer) -> float:
    """The server batches requests its own way: its rewards are the offline ones in another fp32 order,
    within what fp32 promises for rewards of this model's magnitude (tests/fp32.py)."""
    convs = [CONV, CONV[:1] + [{"role": "assistant", "content": "no"}],
             [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello ! how are you ?"}]]
    return fp32_atol(forward_terms(scorer.model.config, 64), scorer.score(convs))


@pytest.fixture(scope="module")
def client(scorer):
    with TestClient(create_app(scorer, ServeSettings(max_batch=8, max_body_bytes=20_000, max_tokens=64))) as c:
        yield c


def test_health_and_page(client):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["can_trace"] and h["can_score"] and not h["is_generative"]
    page = client.get("/")
    assert page.status_code == 200 and 'id="heatmap"' in page.text


def test_score_messages_and_plain_text_agree_with_offline(client, scorer, atol):
    r1 = client.post("/score", json={"conversations": [CONV, CONV[:1] + [{"role": "assistant", "content": "no"}]]})
    assert r1.status_code == 200, r1.text
    r2 = client.post("/score", json={"prompts": [CONV[0]["content"]], "responses": [CONV[1]["content"]]})
    offline = scorer.score([CONV]).item()
    assert r1.json()["rewards"][0] == pytest.approx(offline, abs=atol)
    assert r2.json()["rewards"][0] == pytest.approx(offline, abs=atol)
    assert r1.json()["tokens"][0] == len(scorer.encode([CONV])[0])


def test_compare_is_sigmoid_of_reward_difference(client, scorer, atol):
    body = {"pairs": [{"prompt": "hi", "a": "hello ! how are you ?", "b": "no"}]}
    r = client.post("/compare", json=body).json()
    ra, rb = scorer.score([[{"role": "user", "content": "hi"}, {"role": "assistant", "content": x}]
                           for x in ("hello ! how are you ?", "no")]).tolist()
    # sigmoid's slope is at most 1/4, and two rewards move: half a reward's tolerance
    assert r["probabilities"][0] == pytest.approx(torch.sigmoid(torch.tensor(ra - rb)).item(), abs=atol / 2)
    assert r["rewards_a"][0] == pytest.approx(ra, abs=atol)


def test_trace_endpoint(client, scorer, atol):
    r = client.post("/trace", json={"prompt": CONV[0]["content"], "response": CONV[1]["content"]})
    assert r.status_code == 200, r.text
    t = r.json()
    assert len(t["tokens"]) == len(t["values"]) == len(t["contributions"])
    assert t["kind"] == "prefix_reward"
    assert t["reward"] == pytest.approx(scorer.score([CONV]).item(), abs=atol)
    assert client.post("/trace", json={"messages": CONV}).json()["values"] == pytest.approx(t["values"], abs=atol)


def test_openrlhf_get_reward(client, scorer, atol):
    """The OpenRLHF client's body: rendered conversations (template + specials), prompts, labels, extras."""
    tok = scorer.tokenizer
    query = tok.apply_chat_template(CONV, tokenize=False)
    prompt = tok.apply_chat_template(CONV[:1], tokenize=False, add_generation_prompt=True)
    body = {"query": [query, query + tok.pad_token * 3], "prompts": [prompt, prompt], "labels": [None, "x"],
            "something_new": {"a": 1}}
    r = client.post("/get_reward", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    offline = scorer.score([CONV]).item()
    assert out["rewards"] == pytest.approx([offline, offline], abs=atol)
    assert out["scores"] == out["rewards"]
    # A query cut before its terminator is ended as the template ends a turn (OpenRLHF's server appends EOS).
    cut = query.rstrip()[: -len("<|im_end|>")]
    assert client.post("/get_reward", json={"query": [cut]}).json()["rewards"][0] == pytest.approx(offline, abs=atol)


def test_metrics_prometheus_text(client):
    client.get("/health")
    text = client.get("/metrics").text
    assert "# TYPE rewardlab_requests_total counter" in text
    assert 'rewardlab_requests_total{path="/health",status="200"}' in text
    assert "rewardlab_batches_total" in text and "rewardlab_queue_depth" in text


@pytest.mark.parametrize("body,status,needle", [
    ({"conversations": []}, 422, "empty"),
    ({"conversations": [CONV] * 9}, 413, "--max-batch"),
    ({"prompts": ["hi"], "responses": ["very " * 80]}, 413, "--max-tokens"),
    ({"prompts": ["hi"], "responses": [""]}, 400, "empty"),
    ({"conversations": [[{"role": "user", "content": "hi"}]]}, 400, "assistant"),
    ({"prompts": ["a", "b"], "responses": ["c"]}, 422, "responses"),
    ({"conversation": [CONV]}, 422, "conversation"),
    ({"conversations": "x"}, 422, "conversations"),
])
def test_limits_and_bad_requests_answer_4xx_with_a_message(client, body, status, needle):
    r = client.post("/score", json=body)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]


def test_body_limit_and_malformed_json(client):
    r = client.post("/score", content=b'{"prompts": ["' + b"a" * 30_000 + b'"], "responses": ["b"]}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 413 and "--max-body-bytes" in r.json()["error"]
    r = client.post("/score", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert client.get("/health").status_code == 200  # still up


def test_api_key(scorer):
    app = create_app(scorer, ServeSettings(api_key="s3cret"))
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200  # liveness stays open
        assert c.get("/").status_code == 200
        body = {"prompts": ["hi"], "responses": ["hello"]}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            r = c.post("/score", json=body, headers=headers)
            assert r.status_code == 401 and "API key" in r.json()["error"]
            assert r.headers["www-authenticate"] == "Bearer"
        assert c.get("/metrics").status_code == 401
        assert c.post("/get_reward", json={"query": ["x"]}).status_code == 401
        assert c.post("/score", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_openapi_schema_is_complete(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/score", "/compare", "/trace", "/get_reward"):
        op = paths[path]["post"]
        assert "$ref" in op["requestBody"]["content"]["application/json"]["schema"]
        assert "$ref" in op["responses"]["200"]["content"]["application/json"]["schema"]
        for code in ("400", "401", "413", "422", "429"):
            assert code in op["responses"], (path, code)
    assert {"/health", "/metrics", "/"} <= set(paths)
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert spec["components"]["schemas"]["GetRewardRequest"].get("additionalProperties", True) is not False


class SlowScorer(BaseScorer):
    """Wraps a scorer: every forward sleeps, and records its batch sizes (to watch the batcher)."""

    can_score_ids = True

    def __init__(self, inner, delay: float) -> None:
        self.inner, self.delay, self.batches = inner, delay, []
        self.encoder, self.tokenizer, self.max_positions = inner.encoder, inner.tokenizer, inner.max_positions

    def score_ids(self, seqs):
        self.batches.append(len(seqs))
        time.sleep(self.delay)
        return self.inner.score_ids(seqs)

    def score(self, convs):
        return self.score_ids(self.inner.encode(convs))

    def compare(self, prompts, a, b):
        return self.inner.compare(prompts, a, b)


def test_concurrent_requests_are_merged_into_batches(scorer, atol):
    import httpx

    slow = SlowScorer(scorer, delay=0.05)
    app = create_app(slow, ServeSettings(max_wait_ms=20))

    async def main():
        app.state.batcher.start()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            rs = await asyncio.gather(*[c.post("/score", json={"prompts": ["hi"], "responses": [f"hello {w}"]})
                                        for w in ("you", "me", "it", "this", "that", "so", "very", "yes")])
        return rs

    rs = asyncio.run(main())
    app.state.batcher.close()
    assert all(r.status_code == 200 for r in rs)
    assert sum(slow.batches) == 8 and max(slow.batches) > 1  # merged, not one forward per request
    expected = scorer.score([[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello you"}]])
    assert rs[0].json()["rewards"][0] == pytest.approx(expected.item(), abs=atol)


def test_full_queue_answers_429_at_once(scorer):
    import httpx

    slow = SlowScorer(scorer, delay=0.3)
    app = create_app(slow, ServeSettings(max_queue=1, max_wait_ms=0))

    async def main():
        app.state.batcher.start()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            body = {"prompts": ["hi"], "responses": ["hello"]}
            first = asyncio.create_task(c.post("/score", json=body))  # runs
            await asyncio.sleep(0.1)
            second = asyncio.create_task(c.post("/score", json=body))  # waits in the queue
            await asyncio.sleep(0.05)
            t0 = time.perf_counter()
            third = await c.post("/score", json=body)  # the queue is full
            took = time.perf_counter() - t0
            return await first, await second, third, took

    first, second, third, took = asyncio.run(main())
    app.state.batcher.close()
    assert first.status_code == second.status_code == 200
    assert third.status_code == 429 and "retry" in third.json()["error"] and third.headers["retry-after"] == "1"
    assert took < 0.2  # refused at once, not after the queue drained
    assert app.state.batcher.stats.rejected == 1


def test_a_failing_batch_answers_500_and_the_server_lives_on(scorer):
    class Broken(SlowScorer):
        def score_ids(self, seqs):
            if any(len(s) > 20 for s in seqs):
                raise RuntimeError("boom")
            return super().score_ids(seqs)

    with TestClient(create_app(Broken(scorer, 0.0)), raise_server_exceptions=False) as c:
        assert c.post("/score", json={"prompts": ["hi"], "responses": ["very " * 30]}).status_code == 500
        assert c.post("/score", json={"prompts": ["hi"], "responses": ["ok"]}).status_code == 200


def _uvicorn(app, port_holder: list):
    import socket

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port_holder.append(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=10))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.02)
    return server, thread


def test_disconnected_client_has_its_queued_work_cancelled(scorer):
    import httpx

    slow = SlowScorer(scorer, delay=0.6)
    app = create_app(slow, ServeSettings(max_wait_ms=0))
    port: list = []
    server, thread = _uvicorn(app, port)
    url = f"http://127.0.0.1:{port[0]}/score"
    body = {"prompts": ["hi"], "responses": ["hello"]}
    try:
        busy = threading.Thread(target=lambda: httpx.post(url, json=body, timeout=10))
        busy.start()
        time.sleep(0.2)  # the first request is running; the next one queues
        with pytest.raises(httpx.TimeoutException):
            httpx.post(url, json={"prompts": ["hi"], "responses": ["bye"]}, timeout=0.2)  # gives up, disconnects
        busy.join()
        time.sleep(0.3)
        assert slow.batches == [1]  # the abandoned request never ran
        assert app.state.batcher.stats.cancelled == 1
    finally:
        server.should_exit = True
        thread.join(10)


def test_graceful_shutdown_finishes_in_flight_requests(scorer):
    import httpx

    slow = SlowScorer(scorer, delay=0.5)
    port: list = []
    server, thread = _uvicorn(create_app(slow), port)
    result = {}

    def call():
        result["r"] = httpx.post(f"http://127.0.0.1:{port[0]}/score", json={"prompts": ["hi"], "responses": ["x"]},
                                 timeout=10)

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.15)
    server.should_exit = True  # what SIGTERM does
    t.join(10)
    thread.join(10)
    assert result["r"].status_code == 200 and len(result["r"].json()["rewards"]) == 1
    assert not thread.is_alive()
