"""Dynamic batching: concurrent requests merged into one forward pass, run off the event loop.

Requests wait in a bounded queue (a full queue refuses at once: :class:`QueueFull`, answered 429).
One worker thread takes the oldest request and, for kinds that batch, keeps adding queued requests of
the same kind while the merged batch stays within ``token_budget`` tokens and the oldest request has
waited less than ``max_wait_s``; then it runs the kind's handler once on all their items and hands
each request its share. A request whose awaiting task was cancelled (client gone) is dropped from the
queue unrun. Requests that arrive while a batch runs simply form the next batch, so under load batches
fill up without any waiting.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


class QueueFull(RuntimeError):
    """The batcher's queue holds ``max_queue`` requests already."""


class BatcherClosed(RuntimeError):
    """The batcher is shutting down and takes no new work."""


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    tokens: int = 0
    rejected: int = 0
    cancelled: int = 0
    max_batch_items: int = 0


@dataclass
class _Job:
    kind: str
    items: list
    cost: int
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.monotonic)


def _resolve(fut: asyncio.Future, result=None, error: BaseException | None = None) -> None:
    if fut.done():  # cancelled meanwhile
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


class DynamicBatcher:
    """``handlers[kind](items) -> results`` (one result per item, in order) run on one worker thread.

    ``batchable`` kinds are merged across requests; others run one request at a time.
    """

    def __init__(self, handlers: dict[str, Callable[[list], Sequence]], batchable: Sequence[str] = (),
                 token_budget: int = 8192, max_wait_s: float = 0.005, max_queue: int = 512) -> None:
        self.handlers = handlers
        self.batchable = set(batchable)
        self.token_budget = token_budget
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.stats = BatchStats()
        self._queue: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    @property
    def depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        if self._thread is None:
            self._closing = False
            self._thread = threading.Thread(target=self._work, name="rewardlab-batcher", daemon=True)
            self._thread.start()

    def close(self, timeout: float | None = None) -> None:
        """Stop taking work; the worker finishes what is queued, then exits."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    async def submit(self, kind: str, items: list, cost: int) -> list:
        """Queue ``items`` (``cost`` tokens) and wait for their results. Cancelling the awaiting task
        cancels the request: if still queued, it never runs."""
        if kind not in self.handlers:
            raise KeyError(f"no handler for {kind!r}")
        loop = asyncio.get_running_loop()
        job = _Job(kind, items, cost, loop.create_future(), loop)
        with self._cond:
            if self._closing:
                raise BatcherClosed("the server is shutting down")
            if len(self._queue) >= self.max_queue:
                self.stats.rejected += 1
                raise QueueFull(f"{len(self._queue)} requests are already waiting (max_queue={self.max_queue})")
            self._queue.append(job)
            self._cond.notify()
        return await job.future

    # ---- worker thread -------------------------------------------------------------------------------
    def _next_batch(self) -> list[_Job] | None:
        """Block until a batch is ready; None when closing and the queue is empty."""
        with self._cond:
            while True:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return None
                first = self._queue.popleft()
                if first.future.cancelled():
                    self.stats.cancelled += 1
                    continue
                break
            batch, tokens = [first], first.cost
            if first.kind not in self.batchable:
                return batch
            deadline = first.enqueued + self.max_wait_s
            while tokens < self.token_budget:
                for job in list(self._queue):
                    if job.future.cancelled():
                        self._queue.remove(job)
                        self.stats.cancelled += 1
                    elif job.kind == first.kind and tokens + job.cost <= self.token_budget:
                        self._queue.remove(job)
                        batch.append(job)
                        tokens += job.cost
                left = deadline - time.monotonic()
                if left <= 0 or self._closing or tokens >= self.token_budget:
                    break
                self._cond.wait(left)
            return batch

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            items = [x for job in batch for x in job.items]
            try:
                results = list(self.handlers[batch[0].kind](items))
                if len(results) != len(items):
                    raise RuntimeError(f"handler returned {len(results)} results for {len(items)} items")
                error = None
            except BaseException as e:  # handed to the requests; the worker lives on
                results, error = [], e
            self.stats.batches += 1
            self.stats.items += len(items)
            self.stats.tokens += sum(job.cost for job in batch)
            self.stats.max_batch_items = max(self.stats.max_batch_items, len(items))
            at = 0
            for job in batch:
                share = None if error else results[at: at + len(job.items)]
                at += len(job.items)
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                    job.loop.call_soon_threadsafe(_resolve, job.future, share, error)
