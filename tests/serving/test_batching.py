"""Micro-batching: concurrent requests share model calls, bounded by size, never split."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from vertex_edge.serving.batching import DeadlineExceeded, MicroBatcher


class FakeModel:
    def __init__(self, name: str = "m", delay: float = 0.0) -> None:
        self.name = name
        self.delay = delay
        self.calls: list[int] = []

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(len(batch))
        if self.delay:
            time.sleep(self.delay)
        # echo: "probabilities" = the image's first pixel, so results can be matched to requests
        return np.repeat(batch[:, :1, 0], 10, axis=1)


def _images(n: int, value: float) -> np.ndarray:
    return np.full((n, 28, 28), value, dtype=np.float32)


async def _with_batcher(model: FakeModel, coro, **kw):
    batcher = MicroBatcher(lambda: model, lambda m, b: m.run(b), **kw)
    await batcher.start()
    try:
        return await coro(batcher)
    finally:
        await batcher.stop()


def test_concurrent_requests_are_batched_and_answered_in_order() -> None:
    model = FakeModel(delay=0.02)

    async def scenario(batcher):
        return await asyncio.gather(*(batcher.submit(_images(1, float(i))) for i in range(40)))

    results = asyncio.run(_with_batcher(model, scenario, max_batch=16, max_wait_s=0.002))
    for i, (probs, used) in enumerate(results):
        assert used is model
        assert probs.shape == (1, 10) and probs[0, 0] == i
    assert sum(model.calls) == 40
    assert len(model.calls) < 40 and max(model.calls) <= 16


def test_a_request_is_never_split_across_batches_and_a_big_one_runs_in_chunks() -> None:
    model = FakeModel(delay=0.01)

    async def scenario(batcher):
        return await asyncio.gather(
            batcher.submit(_images(6, 1)), batcher.submit(_images(6, 2)), batcher.submit(_images(20, 3))
        )

    results = asyncio.run(_with_batcher(model, scenario, max_batch=10, max_wait_s=0.005))
    assert [r[0].shape[0] for r in results] == [6, 6, 20]
    assert [float(r[0][0, 0]) for r in results] == [1, 2, 3]
    assert model.calls == [6, 10, 6, 10]  # the big request's chunks take turns with the small ones


def test_a_big_request_delays_small_ones_by_one_chunk_and_runs_on_one_model() -> None:
    model = FakeModel(delay=0.01)
    holder = {"model": model}
    order: list[str] = []

    async def scenario():
        batcher = MicroBatcher(lambda: holder["model"], lambda m, b: m.run(b), max_batch=4, max_wait_s=0)
        await batcher.start()
        try:
            big = asyncio.ensure_future(batcher.submit(_images(40, 9)))
            await asyncio.sleep(0.015)  # its first chunk is running
            holder["model"] = FakeModel("new")  # a swap: the big request stays on its model

            async def small() -> None:
                await batcher.submit(_images(1, 1))
                order.append("small")

            await asyncio.gather(small(), big)
            order.append("big")
            return await big
        finally:
            await batcher.stop()

    probs, used = asyncio.run(scenario())
    assert order == ["small", "big"] and used is model
    assert probs.shape == (40, 10) and (probs[:, 0] == 9).all()
    assert model.calls == [4] * 10  # the small request ran on the new model, between two chunks
    assert holder["model"].calls == [1]


def test_lone_request_does_not_wait_longer_than_max_wait() -> None:
    model = FakeModel()

    async def scenario(batcher):
        started = time.perf_counter()
        await batcher.submit(_images(1, 0))
        return time.perf_counter() - started

    elapsed = asyncio.run(_with_batcher(model, scenario, max_batch=512, max_wait_s=0.05))
    assert elapsed < 1.0  # generous: a loaded CI machine; the wait itself is 50 ms


def test_a_model_error_fails_only_that_batch() -> None:
    class Flaky(FakeModel):
        def run(self, batch):
            if batch[0, 0, 0] == 13:
                raise RuntimeError("bad batch")
            return super().run(batch)

    model = Flaky()

    async def scenario(batcher):
        with pytest.raises(RuntimeError, match="bad batch"):
            await batcher.submit(_images(1, 13))
        probs, _ = await batcher.submit(_images(1, 5))
        return probs

    probs = asyncio.run(_with_batcher(model, scenario, max_batch=4, max_wait_s=0))
    assert probs[0, 0] == 5


def test_the_model_is_taken_per_batch() -> None:
    holder = {"model": FakeModel("old")}

    async def scenario():
        batcher = MicroBatcher(lambda: holder["model"], lambda m, b: m.run(b), max_batch=8, max_wait_s=0)
        await batcher.start()
        try:
            _, first = await batcher.submit(_images(1, 0))
            holder["model"] = FakeModel("new")
            _, second = await batcher.submit(_images(1, 0))
            return first.name, second.name
        finally:
            await batcher.stop()

    assert asyncio.run(scenario()) == ("old", "new")


def test_submit_before_start_is_an_error() -> None:
    batcher = MicroBatcher(lambda: None, lambda m, b: b)
    with pytest.raises(RuntimeError, match="not started"):
        asyncio.run(batcher.submit(_images(1, 0)))


def test_a_batch_waits_only_for_requests_already_arriving() -> None:
    model = FakeModel()

    async def scenario(batcher):
        async def late(value: float, delay: float):
            with batcher.incoming() as ticket:
                await asyncio.sleep(delay)  # still reading its body
                return await batcher.submit(_images(1, value), ticket)

        async def dropped():
            with batcher.incoming():
                await asyncio.sleep(0.01)  # fails validation: never submits

        return await asyncio.gather(late(1, 0), late(2, 0.01), late(3, 0.02), dropped())

    asyncio.run(_with_batcher(model, scenario, max_batch=8, max_wait_s=0.5))
    assert model.calls == [3]  # one model call for the three requests


def test_no_wait_without_announced_requests() -> None:
    model = FakeModel()

    async def scenario(batcher):
        started = time.perf_counter()
        with batcher.incoming() as ticket:
            await batcher.submit(_images(1, 0), ticket)
        return time.perf_counter() - started

    elapsed = asyncio.run(_with_batcher(model, scenario, max_batch=8, max_wait_s=5.0))
    assert elapsed < 1.0  # the 5 s wait never started


def test_a_request_past_its_deadline_is_dropped_before_the_model_runs_it() -> None:
    model = FakeModel(delay=0.2)

    async def scenario(batcher):
        first = asyncio.ensure_future(batcher.submit(_images(1, 1.0)))
        await asyncio.sleep(0.05)  # the model thread is busy with the first request
        late = batcher.submit(_images(1, 2.0), deadline=time.monotonic() + 0.05)
        return await asyncio.gather(first, late, return_exceptions=True)

    first, late = asyncio.run(_with_batcher(model, scenario, max_batch=1, max_wait_s=0))
    assert first[0][0, 0] == 1.0
    assert isinstance(late, DeadlineExceeded)
    assert model.calls == [1]  # the late request never reached the model


def test_calls_holding_one_request_only_go_to_run_one() -> None:
    calls: list[tuple[str, int]] = []

    def runner(kind: str):
        def run(model: object, batch: np.ndarray) -> np.ndarray:
            calls.append((kind, len(batch)))
            time.sleep(0.01)  # long enough for the next submitters to queue up behind
            return batch[:, 0, :1]

        return run

    async def scenario() -> None:
        batcher = MicroBatcher(lambda: "m", runner("many"), max_batch=4, max_wait_s=0, run_one=runner("one"))
        await batcher.start()
        try:
            first = asyncio.ensure_future(batcher.submit(np.zeros((1, 28, 28), np.float32)))
            await asyncio.sleep(0.002)  # the first call is running: the next two share a batch
            await asyncio.gather(first, *(batcher.submit(np.zeros((1, 28, 28), np.float32)) for _ in range(2)))
            await batcher.submit(np.zeros((10, 28, 28), np.float32))  # a big request, in chunks
        finally:
            await batcher.stop()

    asyncio.run(scenario())
    assert calls == [("one", 1), ("many", 2), ("one", 4), ("one", 4), ("one", 2)]
