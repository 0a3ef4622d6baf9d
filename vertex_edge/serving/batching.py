"""Micro-batching: concurrent requests share one model call.

Requests queue up; one model thread takes everything queued (up to ``max_batch`` images; a
request is never split across batches), runs the model once (ONNX Runtime releases the GIL, so
the event loop keeps reading requests meanwhile) and hands the answers back to the event loop.
The thread takes the next batch the moment it is free, so batches grow with load and the model
never waits for the event loop.

A request bigger than ``max_batch`` waits in its own queue and runs a chunk of ``max_batch``
images per model call (all its chunks on the model it started with); while small requests are
waiting, the thread alternates between a batch of them and one chunk, so a 512-image request
delays a one-image request by one chunk, not by 16 model calls.

Before running a batch that is not full, the thread waits at most ``max_wait_s`` for requests
that have *arrived but are still being read or parsed* (see :meth:`MicroBatcher.incoming`). A
lone request never waits, so an idle server answers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

log = logging.getLogger(__name__)

M = TypeVar("M")


class DeadlineExceeded(Exception):
    """A request that waited for the model past its deadline: dropped before the model ran it."""


class Ticket:
    """One request on its way to the batcher (see :meth:`MicroBatcher.incoming`)."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = True


@dataclass
class _Item:
    images: np.ndarray
    future: asyncio.Future
    deadline: float  # time.monotonic(); past it the request is failed with DeadlineExceeded
    # a request bigger than max_batch: images done so far, their outputs, the model it runs on
    done: int = 0
    parts: list[np.ndarray] | None = None
    model: object = None


class MicroBatcher(Generic[M]):
    """``await submit(images)`` -> (probabilities, model) computed in a shared batch.

    ``get_model`` is called once per batch: the model current at that moment computes the
    whole batch (a hot swap never splits one). ``run`` is ``(model, batch) -> probabilities``;
    ``run_one`` (default ``run``) the same for a model call holding the images of one request
    only (a chunk of a big request, or a request alone in its batch); all are called in the
    model thread.
    """

    def __init__(
        self,
        get_model: Callable[[], M],
        run: Callable[[M, np.ndarray], np.ndarray],
        *,
        max_batch: int = 128,
        max_wait_s: float = 0.0005,
        run_one: Callable[[M, np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self._get_model = get_model
        self._run = run
        self._run_one = run_one or run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        # shared with the model thread, under _lock: _pending, _pending_images, _big, _stopping, _asleep
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: deque[_Item] = deque()
        self._pending_images = 0
        self._big: deque[_Item] = deque()  # requests of more than max_batch images, run in chunks
        self._big_turn = False  # the model thread's next call is a chunk (when both queues wait)
        self._stopping = False
        self._asleep = False  # the model thread waits on _wake: only then is it notified
        self._incoming = 0  # changed by the event loop only; read by the model thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.images = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name="edge-model", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Let the model call in progress finish, then fail every request still queued."""
        if self._thread is not None:
            with self._lock:
                self._stopping = True
                self._wake.notify()
            self._thread.join()
            self._thread = None
        with self._lock:
            left, self._pending, self._big = [*self._pending, *self._big], deque(), deque()
            self._pending_images = 0
        for item in left:
            if not item.future.done():
                item.future.set_exception(RuntimeError("the server is shutting down"))
        if self.batches:
            log.info(
                "%d images in %d model calls (%.1f per call)",
                self.images,
                self.batches,
                self.images / self.batches,
                extra={"fields": {"images": self.images, "model_calls": self.batches}},
            )

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
            if ticket.open:
                ticket.open = False
                self._incoming -= 1
                if self._thread is not None:
                    with self._lock:
                        if self._asleep:
                            self._wake.notify()

    async def submit(
        self, images: np.ndarray, ticket: Ticket | None = None, deadline: float = float("inf")
    ) -> tuple[np.ndarray, M]:
        """The model's output rows for ``images``; :class:`DeadlineExceeded` when the model thread
        reaches the request after ``deadline`` (``time.monotonic()``)."""
        if self._thread is None or self._loop is None:
            raise RuntimeError("the batcher is not started")
        if ticket is not None and ticket.open:
            ticket.open = False
            self._incoming -= 1
        future: asyncio.Future = self._loop.create_future()
        with self._lock:
            if len(images) > self.max_batch:
                self._big.append(_Item(images, future, deadline))
            else:
                self._pending.append(_Item(images, future, deadline))
                self._pending_images += len(images)
            if self._asleep:
                self._wake.notify()
        return await future

    # ----------------------------------------------------------------- the model thread

    def _take(self) -> list[_Item] | _Item | None:
        """The next work (None: stop): a batch of small requests, or the big request whose next
        chunk runs. A batch waits for a first request, then up to ``max_wait_s`` for requests
        still being read while it is not full."""
        with self._lock:
            while not self._pending and not self._big and not self._stopping:
                self._sleep(None)
            if self._stopping:
                return None
            if self._big and (self._big_turn or not self._pending):
                self._big_turn = False
                return self._big[0]
            self._big_turn = True
            if self.max_wait_s > 0 and self._incoming > 0 and self._pending_images < self.max_batch:
                deadline = time.monotonic() + self.max_wait_s
                while self._incoming > 0 and self._pending_images < self.max_batch and not self._stopping:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._sleep(remaining)
            items = [self._pending.popleft()]
            count = len(items[0].images)
            # never split a request: one that does not fit opens the next batch
            while self._pending and count + len(self._pending[0].images) <= self.max_batch:
                item = self._pending.popleft()
                items.append(item)
                count += len(item.images)
            self._pending_images -= count
            return items

    def _sleep(self, timeout: float | None) -> None:
        """Wait for a notification (``_lock`` held): a submit, a request leaving, a stop."""
        self._asleep = True
        try:
            self._wake.wait(timeout)
        finally:
            self._asleep = False

    def _serve(self) -> None:
        assert self._loop is not None
        loop = self._loop
        while (work := self._take()) is not None:
            try:
                if isinstance(work, _Item):
                    self._chunk(work, loop)
                else:
                    self._batch(work, loop)
            except RuntimeError:  # the event loop is closed: nobody is waiting any more
                return

    def _batch(self, items: list[_Item], loop: asyncio.AbstractEventLoop) -> None:
        """One model call for a batch of small requests."""
        items = [i for i in items if not i.future.done()]  # cancelled: nobody waits for it
        now = time.monotonic()
        late = [i for i in items if i.deadline < now]
        if late:  # past their deadline: answered at once, the model does not run them
            items = [i for i in items if i.deadline >= now]
            loop.call_soon_threadsafe(self._fail, late, DeadlineExceeded())
        if not items:
            return
        batch = items[0].images if len(items) == 1 else np.concatenate([i.images for i in items])
        try:
            model = self._get_model()
            probs = (self._run_one if len(items) == 1 else self._run)(model, batch)
        except Exception as exc:  # noqa: BLE001 - reported to every request of the batch
            log.exception("model call failed for a batch of %d images", len(batch))
            loop.call_soon_threadsafe(self._fail, items, exc)
            return
        loop.call_soon_threadsafe(self._deliver, items, probs, model)

    def _chunk(self, item: _Item, loop: asyncio.AbstractEventLoop) -> None:
        """One model call for the next ``max_batch`` images of a big request (the model's
        working memory stays bounded, and so the server's RSS)."""
        failure: Exception | None = None
        if item.future.done():
            failure = RuntimeError("cancelled")
        elif item.deadline < time.monotonic():
            failure = DeadlineExceeded()
        else:
            if item.model is None:  # every chunk on the model current at the first: a swap never splits it
                item.model, item.parts = self._get_model(), []
            end = min(item.done + self.max_batch, len(item.images))
            try:
                item.parts.append(self._run_one(item.model, item.images[item.done : end]))  # type: ignore[union-attr, arg-type]
            except Exception as exc:  # noqa: BLE001 - reported to the request
                log.exception("model call failed for a chunk of %d images", end - item.done)
                failure = exc
            item.done = end
        if failure is None and item.done < len(item.images):
            return  # more chunks to run
        with self._lock:
            self._big.popleft()
        if failure is not None:
            loop.call_soon_threadsafe(self._fail, [item], failure)
        else:
            loop.call_soon_threadsafe(self._deliver, [item], np.concatenate(item.parts), item.model)  # type: ignore[arg-type]

    # ----------------------------------------------------------------- back on the event loop

    def _deliver(self, items: list[_Item], probs: np.ndarray, model: M) -> None:
        self.batches += 1
        self.images += len(probs)
        start = 0
        for item in items:
            end = start + len(item.images)
            if not item.future.done():
                item.future.set_result((probs[start:end], model))
            start = end

    @staticmethod
    def _fail(items: list[_Item], exc: Exception) -> None:
        for item in items:
            if not item.future.done():
                item.future.set_exception(exc)
