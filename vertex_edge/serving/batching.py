"""Micro-batching: concurrent requests share one model call.

Requests queue up; one worker task takes everything queued (up to ``max_batch`` images; a
request is never split across batches, and one bigger than ``max_batch`` is run in chunks)
and runs the model once in a worker thread (ONNX Runtime releases the GIL, so the event loop
keeps reading requests meanwhile). While a model call runs the next batch
fills up, so batches grow with load.

Before running a batch that is not full, the worker waits at most ``max_wait_s`` for requests
that have *arrived but are still being read or parsed* (see :meth:`MicroBatcher.incoming`). A
lone request never waits, so an idle server answers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

log = logging.getLogger(__name__)

M = TypeVar("M")


class Ticket:
    """One request on its way to the batcher (see :meth:`MicroBatcher.incoming`)."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = True


class ModelThread:
    """The one thread that runs model calls, fed by the event loop.

    Cheaper per call than ``loop.run_in_executor``: a queue put on the way in, one
    ``call_soon_threadsafe`` on the way back, no ``concurrent.futures`` bookkeeping.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str = "edge-model") -> None:
        self._loop = loop
        self._jobs: queue.SimpleQueue[tuple[asyncio.Future, Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def run(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        """Start ``fn(*args)`` in the thread; await the returned future for its result."""
        future = self._loop.create_future()
        self._jobs.put((future, fn, args))
        return future

    def stop(self) -> None:
        """Finish the call in progress (if any), then end the thread."""
        self._jobs.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, fn, args = job
            try:
                outcome: tuple[Callable[..., None], Any] = (_set_result, fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
                outcome = (_set_exception, exc)
            try:
                self._loop.call_soon_threadsafe(outcome[0], future, outcome[1])
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return


def _set_result(future: asyncio.Future, value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


@dataclass
class _Item:
    images: np.ndarray
    future: asyncio.Future


class MicroBatcher(Generic[M]):
    """``await submit(images)`` -> (probabilities, model) computed in a shared batch.

    ``get_model`` is called once per batch: the model current at that moment computes the
    whole batch (a hot swap never splits one). ``run`` is ``(model, batch) -> probabilities``.
    """

    def __init__(
        self,
        get_model: Callable[[], M],
        run: Callable[[M, np.ndarray], np.ndarray],
        *,
        max_batch: int = 128,
        max_wait_s: float = 0.0005,
    ) -> None:
        self._get_model = get_model
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._pending: deque[_Item] = deque()
        self._pending_images = 0
        self._incoming = 0
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._thread: ModelThread | None = None
        self.batches = 0
        self.images = 0

    async def start(self) -> None:
        self._arrived = asyncio.Event()
        self._thread = ModelThread(asyncio.get_running_loop())
        self._task = asyncio.create_task(self._worker(), name="edge-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._pending:
            item = self._pending.popleft()
            if not item.future.done():
                item.future.set_exception(RuntimeError("the server is shutting down"))
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    @contextlib.contextmanager
    def incoming(self) -> Iterator[Ticket]:
        """Announce a request as soon as it arrives; pass the ticket to :meth:`submit`.

        A batch that is not full waits (up to ``max_wait_s``) only while announced requests
        have not been submitted yet; one that fails validation leaves the context and stops
        counting."""
        ticket = Ticket()
        self._incoming += 1
        try:
            yield ticket
        finally:
            self._close(ticket)

    def _close(self, ticket: Ticket) -> None:
        if ticket.open:
            ticket.open = False
            self._incoming -= 1
            if self._arrived is not None:
                self._arrived.set()

    async def submit(self, images: np.ndarray, ticket: Ticket | None = None) -> tuple[np.ndarray, M]:
        if self._arrived is None or self._task is None:
            raise RuntimeError("the batcher is not started")
        if ticket is not None:
            ticket.open = False
            self._incoming -= 1
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending.append(_Item(images, future))
        self._pending_images += len(images)
        self._arrived.set()
        return await future

    async def _collect(self) -> list[_Item]:
        assert self._arrived is not None
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        if self.max_wait_s > 0 and self._pending_images < self.max_batch and self._incoming > 0:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.max_wait_s
            while self._pending_images < self.max_batch and self._incoming > 0:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    async with asyncio.timeout(remaining):
                        await self._arrived.wait()
                except TimeoutError:
                    break
        items = [self._pending.popleft()]
        count = len(items[0].images)
        # never split a request: one that does not fit opens the next batch
        while self._pending and count + len(self._pending[0].images) <= self.max_batch:
            item = self._pending.popleft()
            items.append(item)
            count += len(item.images)
        self._pending_images -= count
        return items

    def _run_bounded(self, model: M, batch: np.ndarray) -> np.ndarray:
        """One model call, or several of ``max_batch`` for a request bigger than that: the
        model's working memory stays bounded (and the server's RSS flat)."""
        if len(batch) <= self.max_batch:
            return self._run(model, batch)
        step = self.max_batch
        return np.concatenate([self._run(model, batch[i : i + step]) for i in range(0, len(batch), step)])

    async def _worker(self) -> None:
        assert self._thread is not None
        while True:
            items = await self._collect()
            items = [i for i in items if not i.future.done()]  # the client went away
            if not items:
                continue
            batch = items[0].images if len(items) == 1 else np.concatenate([i.images for i in items])
            model = self._get_model()
            try:
                probs = await self._thread.run(self._run_bounded, model, batch)
            except asyncio.CancelledError:
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(RuntimeError("the server is shutting down"))
                raise
            except Exception as exc:  # noqa: BLE001 - reported to every request of the batch
                log.exception("model call failed for a batch of %d images", len(batch))
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            self.batches += 1
            self.images += len(batch)
            start = 0
            for item in items:
                end = start + len(item.images)
                if not item.future.done():
                    item.future.set_result((probs[start:end], model))
                start = end
