"""What the serving benchmarks share: a same-shape synthetic CNN model folder, real test images,
the in-process ONNX Runtime floor, the prediction server started as a process, and the load
generator (asyncio, raw keep-alive HTTP/1.1, in processes of its own). Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from vertex_edge.artifact import (
    MODEL_FILES,
    ONNX_FILE,
    PROFILE_FILE,
    InputSpec,
    ModelArtifact,
    ModelCard,
    OutputSpec,
    TrainMetrics,
    digests,
)
from vertex_edge.monitoring.layout import LAYOUT_KEY

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # never anything else
PHASE_TIMEOUT_S = 300.0


# --------------------------------------------------------------------------- model


def synthetic_cnn(folder: Path, seed: int = 0) -> Path:
    """A model of the trained one's shape (params.yaml: conv 32 + conv 64 with 2x2 pooling, dense
    128, softmax 10) with random weights, plus a model card - for when no model is trained."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def init(name: str, shape: tuple[int, ...]) -> Any:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.05).astype(np.float32), name)

    nodes = [
        helper.make_node("Reshape", ["image", "shape4"], ["x0"]),
        helper.make_node("Div", ["x0", "scale"], ["x1"]),
        helper.make_node("Conv", ["x1", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["d1"]),
        helper.make_node("Relu", ["d1"], ["r3"]),
        helper.make_node("Gemm", ["r3", "w4", "b4"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    inits = [
        numpy_helper.from_array(np.array([-1, 1, 28, 28], dtype=np.int64), "shape4"),
        numpy_helper.from_array(np.array(255.0, dtype=np.float32), "scale"),
        init("w1", (32, 1, 3, 3)),
        init("b1", (32,)),
        init("w2", (64, 32, 3, 3)),
        init("b2", (64,)),
        init("w3", (64 * 7 * 7, 128)),
        init("b3", (128,)),
        init("w4", (128, 10)),
        init("b4", (10,)),
    ]
    graph = helper.make_graph(
        nodes,
        "synthetic-cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 28, 28])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    data = model.SerializeToString()
    (folder / "model.onnx").write_bytes(data)
    labels = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    card = ModelCard(
        name="fashion-mnist", version="synthetic-cnn", created="2026-01-01T00:00:00+00:00", labels=labels,
        input=InputSpec(name="image", shape=[None, 28, 28]), output=OutputSpec(shape=[None, 10]),
        data_version="synthetic", metrics=TrainMetrics(test_accuracy=0.1), artifacts=digests(folder, ("model.onnx",)),
    )  # fmt: skip
    ModelArtifact(folder, card).write_card()
    return folder


def plain_model_dir(model_dir: Path, target: Path) -> Path:
    """A copy of ``model_dir`` whose ``model.onnx`` has only its first output, the probabilities (no
    embedding/monitor outputs, no reference profile; the card updated to match), so that every
    server computes and returns the same thing. A model without the monitor outputs is copied as is."""
    import onnx

    shutil.copytree(model_dir, target)
    model = onnx.load(str(target / ONNX_FILE))
    graph = model.graph
    if len(graph.output) == 1:
        return target
    first = graph.output[0].name  # the probabilities (the monitor outputs come after them)
    needed, kept = {first}, []
    for node in reversed(graph.node):  # nodes are in topological order: walk back from the output
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    keep_out = [o for o in graph.output if o.name == first]
    del graph.output[:]
    graph.output.extend(keep_out)
    unused = [t for t in graph.initializer if t.name not in needed]
    for t in unused:
        graph.initializer.remove(t)
    kept_meta = [m for m in model.metadata_props if m.key != LAYOUT_KEY]  # the monitor columns' entry
    del model.metadata_props[:]
    model.metadata_props.extend(kept_meta)
    onnx.checker.check_model(model)
    onnx.save(model, str(target / ONNX_FILE))
    (target / PROFILE_FILE).unlink(missing_ok=True)
    artifact = ModelArtifact.read(target)
    artifact.write_card(artifact.card.with_updates(artifacts=digests(target, MODEL_FILES), monitor=None))
    return target


def sample_images(count: int) -> np.ndarray:
    path = REPO / "data" / "fashion-mnist" / "t10k-images-idx3-ubyte.gz"
    if path.is_file():
        import gzip

        raw = gzip.decompress(path.read_bytes())
        return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 28, 28)[:count].astype(np.float32)
    return np.random.default_rng(1).integers(0, 256, size=(count, 28, 28)).astype(np.float32)


def floor(model_dir: Path, threads: int) -> dict[str, float]:
    """In-process ONNX Runtime: the same session options as the server, no HTTP."""
    from vertex_edge.serving.model import load_model_dir

    model = load_model_dir(model_dir, threads=threads)
    images = sample_images(512)
    one = images[:1]
    for _ in range(50):
        model.predict(one)
    times = []
    for _ in range(2000):
        t = time.perf_counter()
        model.predict(one)
        times.append(time.perf_counter() - t)
    model.predict(images)
    batch_times = []
    for _ in range(20):
        t = time.perf_counter()
        model.predict(images)
        batch_times.append(time.perf_counter() - t)
    return {
        "single_ms_p50": statistics.median(times) * 1e3,
        "batch512_ms_per_image": statistics.median(batch_times) * 1e3 / len(images),
    }


def batched_floor(
    model_dir: Path,
    *,
    threads: int = 0,
    max_batch: int = 128,
    wide_threads: int = 0,
    seconds: float = 2.0,
    parts: tuple[str, ...] = ("c1", "c16", "b64"),
) -> dict[str, Any]:
    """The floor as the server batches: ONNX Runtime in this process with the server's session
    options, fed by the server's own micro-batcher (no HTTP, no JSON) - 16 submitters of one
    image each (``c16_images_per_s``), 4 of 64 images (``b64_images_per_s``) - and one image
    per call (``single_call_p50_ms``); ``parts`` says which of the three ("c1", "c16", "b64").
    ``wide_threads``: one request's images, from ``max_batch`` up, on a second session with that
    many threads, as the server does (``run_one``)."""
    from vertex_edge.serving.batching import MicroBatcher
    from vertex_edge.serving.model import load_model_dir

    model = load_model_dir(model_dir, threads=threads, wide_threads=wide_threads, wide_min=max_batch)
    images = sample_images(64)
    one = images[:1]
    model.warm_up([1, 64, max_batch])
    out: dict[str, Any] = {}
    if "c1" in parts:
        times = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t = time.perf_counter()
            model.predict(one)
            times.append(time.perf_counter() - t)
        out["single_call_p50_ms"] = statistics.median(times) * 1e3

    async def batched(submitters: int, size: int) -> float:
        batcher = MicroBatcher(
            lambda: model, lambda m, b: m.predict(b), max_batch=max_batch, max_wait_s=0.001,
            run_one=lambda m, b: m.predict(b, wide=True),
        )  # fmt: skip
        await batcher.start()
        done = 0
        stop_at = time.perf_counter() + seconds

        async def submitter(k: int) -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                start = (k * size) % 64
                await batcher.submit(np.roll(images, -start, axis=0)[:size])
                done += size

        started = time.perf_counter()
        await asyncio.gather(*(submitter(k) for k in range(submitters)))
        elapsed = time.perf_counter() - started
        await batcher.stop()
        return done / elapsed

    if "c16" in parts:
        out["c16_images_per_s"] = asyncio.run(batched(16, 1))
    if "b64" in parts:
        out["b64_images_per_s"] = asyncio.run(batched(4, 64))
    return out


# --------------------------------------------------------------------------- load generator


def _request_bytes(port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


async def _worker(
    payloads: list[bytes],
    first: int,
    count: int,
    out: list[float],
    errors: list[str],
    answers: list[tuple[int, bytes]] | None,
    expect: bytes,
    port: int,
    deadline: float,
) -> None:
    """One keep-alive connection: ``count`` requests, cycling through ``payloads`` from ``first``."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        for k in range(count):
            if time.monotonic() > deadline:
                errors.append("phase time limit reached")
                return
            which = (first + k) % len(payloads)
            started = time.perf_counter()
            writer.write(payloads[which])
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            out.append(time.perf_counter() - started)
            if status != 200 or not body.startswith(expect):
                errors.append(f"HTTP {status}: {body[:200]!r}")
            elif answers is not None:
                answers.append((which, body))
    finally:
        writer.close()


def _load_process(
    port: int, path: str, bodies: list[bytes], concurrency: int, requests: int, keep: bool, expect: bytes, conn: Any
) -> None:
    """Runs in its own process: ``concurrency`` keep-alive connections share ``requests``."""
    payloads = [_request_bytes(port, path, body) for body in bodies]
    latencies: list[float] = []
    errors: list[str] = []
    answers: list[tuple[int, bytes]] | None = [] if keep else None

    async def main() -> float:
        deadline = time.monotonic() + PHASE_TIMEOUT_S
        per = [requests // concurrency + (1 if i < requests % concurrency else 0) for i in range(concurrency)]
        started = time.perf_counter()
        results = await asyncio.gather(
            *(
                _worker(payloads, i * 7, n, latencies, errors, answers, expect, port, deadline)
                for i, n in enumerate(per)
                if n
            ),
            return_exceptions=True,
        )
        errors.extend(f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException))
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    conn.send(
        {
            "latencies": latencies,
            "errors": errors[:20],
            "error_count": len(errors),
            "elapsed": elapsed,
            "answers": answers,
        }
    )
    conn.close()


def run_load(
    port: int,
    path: str,
    body: bytes | list[bytes],
    concurrency: int,
    requests: int,
    processes: int = 1,
    *,
    keep_answers: bool = False,
    expect: bytes = b'{"predictions"',
) -> dict[str, Any]:
    """Drive the server from ``processes`` separate processes; merge their figures.

    ``body`` may be a list: each connection cycles through them. A response counts as an error
    unless it is a 200 whose body starts with ``expect``; with ``keep_answers`` the result also
    holds ``answers``, (index of the body sent, response body) for every good response, to be
    checked after the timed part."""
    bodies = body if isinstance(body, list) else [body]
    ctx = mp.get_context("spawn")
    procs, pipes = [], []
    for p in range(processes):
        share = requests // processes + (1 if p < requests % processes else 0)
        conc = max(1, concurrency // processes + (1 if p < concurrency % processes else 0))
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_load_process, args=(port, path, bodies, conc, share, keep_answers, expect, child))
        proc.start()
        procs.append(proc)
        pipes.append(parent)
    results = []
    try:
        for proc, pipe in zip(procs, pipes, strict=True):
            if not pipe.poll(PHASE_TIMEOUT_S + 30):
                raise RuntimeError("load generator did not finish")
            results.append(pipe.recv())
            proc.join()
    finally:  # interrupted or failed: a child blocked writing its figures would hang the exit
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
    latencies = sorted(x for r in results for x in r["latencies"])
    elapsed = max(r["elapsed"] for r in results)
    out = {
        "requests": len(latencies),
        "errors": sum(r["error_count"] for r in results),
        "error_samples": [e for r in results for e in r["errors"]][:5],
        "seconds": elapsed,
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": _pct(latencies, 50),
        "p99_ms": _pct(latencies, 99),
    }
    if keep_answers:
        out["answers"] = [a for r in results for a in r["answers"]]
    return out


def _pct(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(pct / 100 * (len(sorted_values) - 1))))
    return sorted_values[k] * 1e3


# --------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start_server(model_dir: Path, port: int, log_path: Path, extra_env: dict[str, str]) -> subprocess.Popen:
    import httpx

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIP_", "EDGE_"))}
    env.update({"AIP_STORAGE_URI": str(model_dir), "AIP_HTTP_PORT": str(port), "EDGE_HOST": HOST})
    env.update(extra_env)
    env["PYTHONPATH"] = str(REPO)
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([sys.executable, "-m", "vertex_edge.serving"], env=env, stdout=log, stderr=log, cwd=REPO)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: see {log_path}")
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server not healthy within 120 s")


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20
