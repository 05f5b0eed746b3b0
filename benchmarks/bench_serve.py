"""Load test of ``rewardlab serve`` on loopback: 32 concurrent clients for a bounded time.

Three rates on the same conversations (HH-harmless chosen responses, or synthetic ones without the
shared data), all with the same in-memory ScalarScorer:

- ``offline``: ``score_ids`` of all conversations in one call (length-sorted, packed batches);
- ``one_at_a_time``: ``score_ids`` of one conversation per call (what a server without batching does);
- ``served``: ``--clients`` concurrent HTTP clients, each posting one conversation to /score in a loop
  for ``--seconds``; the dynamic batcher merges them.

Reported: sequences/s of each, served/offline (target >= 0.9) and served/one-at-a-time (> 1), p50/p99
latency, errors (target 0). Then ``--memory-requests`` requests (tiny model, so it is quick) to check
that the server's memory stays flat: RSS after the first 10% of the requests and at the end.

    python benchmarks/bench_serve.py [--model smollm2|tiny] [--seconds 40] [--clients 32]
        [--memory-requests 10000] [--out benchmarks/results/serve.json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _common import DEFAULT_DATA, REPO, machine_info, write_json

TARGETS = {"served_over_offline": 0.9, "served_over_one_at_a_time": 1.0, "errors": 0, "rss_growth_mb": 50.0}


def build_scorer(model: str, token_budget: int):
    from transformers import AutoTokenizer

    from rewardlab.models.scalar import build_reward_model, head_of
    from rewardlab.models.scorer import ScalarScorer

    if model == "tiny":
        from tests.conftest import make_tiny_llama

        base = str(make_tiny_llama(Path(tempfile.mkdtemp()) / "tiny"))
    else:
        from rewardlab.assets import resolve_model_path

        base = resolve_model_path(model)
    tok = AutoTokenizer.from_pretrained(base)
    rm = build_reward_model(base, tok).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        head_of(rm).weight.normal_(0, 0.05)
    return ScalarScorer(rm, tok, batch_tokens=token_budget), base


def conversations(n: int, max_tokens: int, scorer) -> list:
    from rewardlab.data import load_pairs

    path = (REPO / DEFAULT_DATA).resolve()
    convs = []
    if path.exists():
        pairs, _ = load_pairs(str(path), lenient=True, limit=4 * n)
        convs = [p.conversation("chosen") for p in pairs]
    else:
        from tests.conftest import synthetic_pairs

        convs = [[{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["chosen"]}]
                 for r in synthetic_pairs(4 * n)]
    keep = []
    for c in convs:
        try:
            if len(scorer.encode([c])[0]) <= max_tokens:
                keep.append(c)
        except ValueError:
            continue
        if len(keep) == n:
            break
    return keep


def start_server(app):
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


async def load(url: str, convs: list, clients: int, seconds: float | None = None, requests: int | None = None,
               on_progress=None) -> dict:
    """``clients`` loops posting one conversation each to /score, for ``seconds`` or ``requests`` in all."""
    import httpx

    lat, errors, done = [], [0], [0]
    stop_at = time.perf_counter() + seconds if seconds else None

    async def client(k: int, c: httpx.AsyncClient) -> None:
        i = k
        while True:
            if stop_at and time.perf_counter() >= stop_at:
                return
            if requests is not None and done[0] + errors[0] >= requests:
                return
            t0 = time.perf_counter()
            try:
                r = await c.post(url + "/score", json={"conversations": [convs[i % len(convs)]]})
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                done[0] += 1
                lat.append(time.perf_counter() - t0)
                if on_progress:
                    on_progress(done[0])
            else:
                errors[0] += 1
            i += clients

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60) as c:
        t0 = time.perf_counter()
        await asyncio.gather(*[client(k, c) for k in range(clients)])
        elapsed = time.perf_counter() - t0
    lat.sort()
    q = (lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000) if lat else (lambda p: float("nan"))
    return {"requests": done[0], "errors": errors[0], "seconds": elapsed, "per_s": done[0] / elapsed,
            "p50_ms": q(0.50), "p99_ms": q(0.99), "mean_ms": statistics.fmean(lat) * 1000 if lat else None}


def throughput(args) -> dict:
    from rewardlab.serve.app import create_app
    from rewardlab.serve.settings import ServeSettings

    scorer, base = build_scorer(args.model, args.token_budget)
    convs = conversations(args.texts, args.max_tokens, scorer)
    ids = scorer.encode(convs)
    tokens = sum(map(len, ids))
    scorer.score_ids(ids[:8])  # warm-up
    offline = []
    for _ in range(2):
        t0 = time.perf_counter()
        scorer.score_ids(ids)
        offline.append(len(ids) / (time.perf_counter() - t0))
    t0 = time.perf_counter()
    single = ids[: args.single]
    for x in single:
        scorer.score_ids([x])
    one_at_a_time = len(single) / (time.perf_counter() - t0)

    app = create_app(scorer, ServeSettings(token_budget=args.token_budget, max_wait_ms=args.max_wait_ms,
                                           max_queue=4 * args.clients))
    server, thread, url = start_server(app)
    try:
        asyncio.run(load(url, convs, args.clients, seconds=3))  # warm-up
        before = app.state.batcher.stats.batches, app.state.batcher.stats.items
        served = asyncio.run(load(url, convs, args.clients, seconds=args.seconds))
        stats = app.state.batcher.stats
        served["mean_batch_sequences"] = (stats.items - before[1]) / max(stats.batches - before[0], 1)
    finally:
        server.should_exit = True
        thread.join(30)
    best_offline = max(offline)
    return {"model": base, "texts": len(convs), "mean_tokens": tokens / len(ids), "clients": args.clients,
            "offline_per_s": best_offline, "one_at_a_time_per_s": one_at_a_time, "served": served,
            "served_over_offline": served["per_s"] / best_offline,
            "served_over_one_at_a_time": served["per_s"] / one_at_a_time}


def memory(args) -> dict:
    import psutil

    from rewardlab.serve.app import create_app

    scorer, base = build_scorer("tiny", args.token_budget)
    convs = conversations(64, 200, scorer)
    app = create_app(scorer)
    server, thread, url = start_server(app)
    proc = psutil.Process()
    marks = {}
    first = max(args.memory_requests // 10, 1)

    def progress(n: int) -> None:
        if n >= first and "first" not in marks:
            marks["first"] = proc.memory_info().rss / 2**20

    try:
        res = asyncio.run(load(url, convs, args.clients, requests=args.memory_requests, on_progress=progress))
    finally:
        server.should_exit = True
        thread.join(30)
    end = proc.memory_info().rss / 2**20
    return {"model": "tiny", "requests": res["requests"], "errors": res["errors"],
            "rss_mb_after_first": marks.get("first", end), "rss_mb_at_end": end,
            "rss_growth_mb": end - marks.get("first", end), "per_s": res["per_s"]}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2", help="base model of the random-head RM: an alias, a directory, or tiny")
    ap.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients")
    ap.add_argument("--seconds", type=float, default=40.0, help="length of the timed load, in seconds")
    ap.add_argument("--texts", type=int, default=128, help="distinct conversations cycled through")
    ap.add_argument("--max-tokens", type=int, default=256, help="skip conversations longer than this")
    ap.add_argument("--single", type=int, default=48, help="conversations scored one at a time for that rate")
    ap.add_argument("--token-budget", type=int, default=8192, help="server and offline batch token budget")
    ap.add_argument("--max-wait-ms", type=float, default=5.0, help="the batcher's max wait")
    ap.add_argument("--memory-requests", type=int, default=10000, help="requests of the memory check (0: skip)")
    ap.add_argument("--out", default="benchmarks/results/serve.json")
    args = ap.parse_args(argv)
    info = machine_info(torch.device("cpu"))
    result = {"throughput": throughput(args)}
    t = result["throughput"]
    print(f"offline {t['offline_per_s']:.1f}/s, one-at-a-time {t['one_at_a_time_per_s']:.1f}/s, served "
          f"{t['served']['per_s']:.1f}/s ({t['served_over_offline']:.2f}x offline, "
          f"{t['served_over_one_at_a_time']:.2f}x one-at-a-time); p50 {t['served']['p50_ms']:.0f} ms, "
          f"p99 {t['served']['p99_ms']:.0f} ms; errors {t['served']['errors']}", flush=True)
    if args.memory_requests:
        m = result["memory"] = memory(args)
        print(f"memory: {m['requests']} requests, RSS {m['rss_mb_after_first']:.0f} -> {m['rss_mb_at_end']:.0f} MiB "
              f"(growth {m['rss_growth_mb']:+.1f} MiB), errors {m['errors']}")
    result["targets"] = TARGETS
    result["meets"] = {"served_over_offline": t["served_over_offline"] >= TARGETS["served_over_offline"],
                       "served_over_one_at_a_time": t["served_over_one_at_a_time"] > 1.0,
                       "errors": t["served"]["errors"] == 0 and result.get("memory", {}).get("errors", 0) == 0}
    if "memory" in result:
        result["meets"]["rss_flat"] = result["memory"]["rss_growth_mb"] <= TARGETS["rss_growth_mb"]
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    result["machine"] = info
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
