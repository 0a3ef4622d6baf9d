"""Helpers shared by the web app's tests, browser tests and benchmark: a fake prediction client,
test images, a tiny ONNX model, free ports, and a real uvicorn in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import select
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tests.conftest import free_port
from tests.serving.tiny_model import LABELS
from vertex_edge.webapp.client import OodFlag, Prediction
from vertex_edge.webapp.samples import SAMPLES_DIR

REPO = Path(__file__).resolve().parents[2]
MODEL_VERSION = "20261122T110000Z-test0001"


def probabilities(class_id: int, top: float = 0.91) -> tuple[float, ...]:
    rest = (1.0 - top) / (len(LABELS) - 1)
    return tuple(top if i == class_id else rest for i in range(len(LABELS)))


class FakeClient:
    """A prediction client that records what it was sent and answers (or fails) as told."""

    backend = "http"

    def __init__(
        self, class_id: int = 7, version: str = MODEL_VERSION, *, ood: OodFlag | None = None, delay: float = 0.0
    ) -> None:
        self.calls: list[np.ndarray] = []
        self.error: BaseException | None = None
        self.delay = delay  # seconds each answer takes
        self.class_id, self.version, self.ood = class_id, version, ood

    @property
    def prediction(self) -> Prediction:
        """The next answer (each has its own request id, as the prediction server gives)."""
        c = self.class_id
        rid = f"req-{len(self.calls):04d}"
        return Prediction(LABELS[c], c, probabilities(c), self.version, labels=tuple(LABELS), request_id=rid, ood=self.ood)

    async def predict(self, image: np.ndarray) -> Prediction:
        answer = self.prediction
        self.calls.append(np.array(image))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return answer

    async def aclose(self) -> None:
        return None


def png_bytes(size: tuple[int, int] = (64, 64), *, mode: str = "RGB", light_background: bool = True) -> bytes:
    """A dark square on a light background (a product photo in miniature)."""
    bg, fg = (240, 20) if light_background else (0, 220)
    image = Image.new("L", size, bg)
    w, h = size
    image.paste(fg, (w // 4, h // 4, 3 * w // 4, 3 * h // 4))
    buf = io.BytesIO()
    image.convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def sample_bytes(sample_id: str = "7-sneaker") -> bytes:
    return (SAMPLES_DIR / f"{sample_id}.png").read_bytes()


def build_tiny_model(folder: Path, *, version: str = MODEL_VERSION, seed: int = 0) -> Path:
    """``model.onnx`` ([N,28,28] float32 0..255 -> [N,10] softmax) and ``model_card.json`` (the
    trained-model artifact contract) in ``folder``, built with the onnx package (no TensorFlow)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = (rng.standard_normal((784, 10)) * 0.05).astype(np.float32)
    bias = np.zeros(10, dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["image", "shape"], ["flat"]),
            helper.make_node("Mul", ["flat", "scale"], ["scaled"]),
            helper.make_node("MatMul", ["scaled", "W"], ["logits0"]),
            helper.make_node("Add", ["logits0", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "tiny-fashion",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 28, 28])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        initializer=[
            numpy_helper.from_array(np.array([-1, 784], dtype=np.int64), "shape"),
            numpy_helper.from_array(np.array(1 / 255, dtype=np.float32), "scale"),
            numpy_helper.from_array(weights, "W"),
            numpy_helper.from_array(bias, "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / "model.onnx"
    onnx.save(model, onnx_path)
    data = onnx_path.read_bytes()
    card = {
        "name": "fashion-mnist",
        "version": version,
        "created": "2026-11-22T11:00:00+00:00",
        "labels": list(LABELS),
        "input": {"name": "image", "shape": [None, 28, 28], "dtype": "float32", "range": [0, 255]},
        "output": {"shape": [None, 10], "kind": "softmax probabilities"},
        "params": {},
        "data_version": "test",
        "git": {"commit": None, "dirty": False},
        "metrics": {"test_accuracy": 0.1, "test_loss": 2.3},
        "artifacts": {"model.onnx": {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}},
        "sacred_run_id": None,
    }
    (folder / "model_card.json").write_text(json.dumps(card, indent=2))
    return folder


def wait_http(url: str, *, timeout: float = 60, proc: subprocess.Popen | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s ({last})")


def chunked_upload_until_answered(port: int, *, limit_bytes: int, boundary: str = "b0") -> tuple[bytes, int]:
    """POST /api/predict a chunked multipart file of zeros, 64 KiB at a time, until the server
    answers or ``limit_bytes`` are sent: ``(what it answered, bytes sent)``."""
    head = (
        "POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
    ).encode()
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + b"%x\r\n%s\r\n" % (len(part), part))
        sent, answer, chunk = 0, b"", b"\0" * 65536
        while sent < limit_bytes:  # stop as soon as the server answers
            if select.select([sock], [], [], 0)[0]:
                answer = sock.recv(65536)
                break
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:  # the server closed the connection after answering
                break
            sent += len(chunk)
        if not answer:
            sock.settimeout(10)
            answer = sock.recv(65536)
    return answer, sent


def stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


@contextlib.contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Serve ``app`` with a real uvicorn on a free loopback port in a thread; yield its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
