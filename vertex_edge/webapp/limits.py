"""What one request may cost the web app, and the answer when it would cost more.

* :class:`Admission` - at most ``max_pending`` uploads in progress (receiving, waiting to be
  decoded, decoding, waiting for the endpoint); one more is refused at once with 503 and
  ``Retry-After``, before its body is read, so buffered uploads are bounded
  (``max_pending x max_upload``).
* :class:`WorkPool` - a few dedicated threads for image work, never Starlette's 40-thread pool:
  ``workers`` threads take any job, cheapest first (cost = the pixels it decodes), and
  ``reserved`` threads take only cheap jobs, so a small image never waits behind large ones.
* :class:`Deadline` - the time a request has left; a job still queued when it runs out is dropped
  (:class:`Busy`, 503), one already running is abandoned (:class:`DeadlineExceeded`, 504).

Nothing here knows about HTTP: the routes map the two exceptions to responses.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: what a refused client is told to wait before retrying, in seconds
RETRY_AFTER_S = 2


class Busy(Exception):
    """The app is at capacity: answer 503 with ``Retry-After``."""

    def __init__(self, reason: str, retry_after: int = RETRY_AFTER_S) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class DeadlineExceeded(Exception):
    """The request ran out of time at ``stage`` (``upload``: 408; otherwise 504)."""

    def __init__(self, stage: str, limit_s: float) -> None:
        super().__init__(f"{stage} did not finish within {limit_s:g} s")
        self.stage = stage
        self.limit_s = limit_s


@dataclass(frozen=True)
class Deadline:
    """``seconds`` from when it was made (monotonic clock)."""

    seconds: float
    start: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return max(0.0, self.start + self.seconds - time.monotonic())


class Admission:
    """A counter of requests in progress (used on the event loop only, so no lock). ``on_idle``
    is called each time the last one leaves (the app trims its heap after a burst)."""

    def __init__(self, limit: int, what: str = "uploads", on_idle: Callable[[], None] | None = None) -> None:
        self.limit = limit
        self.what = what
        self.active = 0
        self.on_idle = on_idle

    @contextmanager
    def enter(self) -> Iterator[None]:
        if self.active >= self.limit:
            raise Busy(f"{self.limit} {self.what} are in progress")
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            if not self.active and self.on_idle is not None:
                self.on_idle()


@dataclass(order=True)
class _Job:
    cost: int
    seq: int
    future: Future = field(compare=False)
    call: Callable[[], Any] = field(compare=False)


class WorkPool:
    """Dedicated threads with a cost-ordered queue (see the module docstring). Threads start
    with :meth:`start` (the app's lifespan), never at construction or import."""

    def __init__(
        self, name: str, workers: int, *, reserved: int = 0, cheap_cost: int = 0, max_queued: int | None = None
    ) -> None:
        self.name = name
        self.workers = workers
        self.reserved = reserved
        self.cheap_cost = cheap_cost
        self.max_queued = max_queued
        self._queue: list[_Job] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def start(self) -> None:
        with self._cond:
            self._closed = False
        for i in range(self.workers + self.reserved):
            cheap_only = i >= self.workers
            thread = threading.Thread(
                target=self._work, args=(cheap_only,), name=f"{self.name}-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        """Stop the threads once their current job is done; queued jobs are cancelled."""
        with self._cond:
            self._closed = True
            for job in self._queue:
                job.future.cancel()
            self._queue.clear()
            self._cond.notify_all()
        self._threads.clear()

    @property
    def queued(self) -> int:
        with self._cond:
            return sum(1 for job in self._queue if not job.future.cancelled())

    def submit(self, fn: Callable[..., T], *args: Any, cost: int = 0) -> Future[T]:
        """Queue ``fn(*args)``; :class:`Busy` when ``max_queued`` jobs are already waiting."""
        future: Future[T] = Future()
        with self._cond:
            if self._closed or not self._threads:
                raise Busy(f"the {self.name} pool is not running")
            if self.max_queued is not None:
                self._queue = [job for job in self._queue if not job.future.cancelled()]
                heapq.heapify(self._queue)
                if len(self._queue) >= self.max_queued:
                    raise Busy(f"{self.max_queued} {self.name} jobs are waiting")
            heapq.heappush(self._queue, _Job(cost, next(self._seq), future, lambda: fn(*args)))
            self._cond.notify_all()
        return future

    async def run(self, fn: Callable[..., T], *args: Any, cost: int = 0, deadline: Deadline | None = None) -> T:
        """``fn(*args)`` in the pool, awaited within ``deadline``: :class:`Busy` if it never
        started, :class:`DeadlineExceeded` if it started but did not finish."""
        future = self.submit(fn, *args, cost=cost)
        waiter = asyncio.wrap_future(future)
        if deadline is None:
            return await waiter
        try:
            async with asyncio.timeout(deadline.remaining()):
                return await waiter
        except TimeoutError:
            if future.cancel() or future.cancelled():  # still queued: nothing was spent on it
                raise Busy(f"no {self.name} thread was free within {deadline.seconds:g} s") from None
            raise DeadlineExceeded(f"{self.name} work", deadline.seconds) from None

    def _take(self, cheap_only: bool) -> _Job | None:
        with self._cond:
            while True:
                while self._queue and self._queue[0].future.cancelled():
                    heapq.heappop(self._queue)
                if self._closed:
                    return None
                if self._queue and (not cheap_only or self._queue[0].cost <= self.cheap_cost):
                    return heapq.heappop(self._queue)
                self._cond.wait()

    def _work(self, cheap_only: bool) -> None:
        while (job := self._take(cheap_only)) is not None:
            if not job.future.set_running_or_notify_cancel():
                continue
            try:
                job.future.set_result(job.call())
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting request
                job.future.set_exception(exc)
            finally:
                del job
