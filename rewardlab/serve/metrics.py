"""Prometheus text metrics without a client library: bounded label sets, fixed buckets, flat memory."""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Latency histogram bucket bounds, in seconds."""
ROUTES = frozenset({"/", "/health", "/metrics", "/score", "/compare", "/trace", "/get_reward", "/openapi.json",
                    "/docs"})


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, list[int]] = {}
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.latency_count: dict[str, int] = defaultdict(int)
        self.in_flight = 0

    def observe(self, path: str, status: int, seconds: float) -> None:
        path = path if path in ROUTES else "other"  # unknown paths must not grow the label set
        with self._lock:
            self.requests[(path, status)] += 1
            counts = self.latency.setdefault(path, [0] * len(BUCKETS))
            for i, b in enumerate(BUCKETS):
                if seconds <= b:
                    counts[i] += 1
            self.latency_sum[path] += seconds
            self.latency_count[path] += 1

    def render(self, model: str, batcher) -> str:
        lines = ["# HELP rewardlab_requests_total HTTP requests by route and status.",
                 "# TYPE rewardlab_requests_total counter"]
        with self._lock:
            for (path, status), n in sorted(self.requests.items()):
                lines.append(f'rewardlab_requests_total{{path="{path}",status="{status}"}} {n}')
            lines += ["# HELP rewardlab_request_seconds Request latency.",
                      "# TYPE rewardlab_request_seconds histogram"]
            for path, counts in sorted(self.latency.items()):
                for b, c in zip(BUCKETS, counts, strict=True):
                    lines.append(f'rewardlab_request_seconds_bucket{{path="{path}",le="{b}"}} {c}')
                lines.append(f'rewardlab_request_seconds_bucket{{path="{path}",le="+Inf"}} {self.latency_count[path]}')
                lines.append(f'rewardlab_request_seconds_sum{{path="{path}"}} {self.latency_sum[path]:.6f}')
                lines.append(f'rewardlab_request_seconds_count{{path="{path}"}} {self.latency_count[path]}')
            in_flight = self.in_flight
        s = batcher.stats
        for name, kind, value, text in (
            ("in_flight_requests", "gauge", in_flight, "Requests being handled now."),
            ("queue_depth", "gauge", batcher.depth, "Requests waiting for the model."),
            ("batches_total", "counter", s.batches, "Forward batches run by the dynamic batcher."),
            ("batch_items_total", "counter", s.items, "Sequences scored in those batches."),
            ("batch_tokens_total", "counter", s.tokens, "Tokens scored in those batches."),
            ("rejected_total", "counter", s.rejected, "Requests refused with 429 (queue full)."),
            ("cancelled_total", "counter", s.cancelled, "Queued requests dropped because the client left."),
        ):
            lines += [f"# HELP rewardlab_{name} {text}", f"# TYPE rewardlab_{name} {kind}",
                      f"rewardlab_{name} {value}"]
        lines += ["# HELP rewardlab_model_info The served model.", "# TYPE rewardlab_model_info gauge",
                  f'rewardlab_model_info{{model="{model}"}} 1']
        return "\n".join(lines) + "\n"
