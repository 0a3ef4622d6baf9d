"""Hostile load on the web app, shared by ``tests/hostile/test_webapp.py`` and
``benchmarks/webapp.py``: a fake prediction endpoint (stateful: it answers as the real server
does, with ``request_id`` and ``ood``, or with a huge body), worst-case uploads, and the real web
app process (``python -m vertex_edge.webapp``) under a memory limit - a cgroup where one can be
made (``memory.max``/``memory.limit_in_bytes``: the kernel OOM-kills past it, as Kubernetes does),
else ``RLIMIT_AS``."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from PIL import Image

from tests.serving.tiny_model import LABELS
from tests.webapp.helpers import REPO, free_port, probabilities, serve_in_thread, stop
from vertex_edge.webapp.settings import DEFAULT_IMAGE_PIXELS

MB = 1024 * 1024


# --------------------------------------------------------------------------- the fake endpoint


@dataclass
class FakeEndpoint:
    """An ASGI prediction server on the Vertex contract. ``mode``: ``ok`` (answers class 7, with
    ``request_id`` and ``ood``), ``huge`` (a 200 MB JSON-ish body, streamed without a length)."""

    mode: str = "ok"
    ood_flag: bool = False
    huge_bytes: int = 200 * MB
    requests: int = 0
    huge_sent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        while (await receive()).get("more_body"):
            pass
        with self._lock:
            self.requests += 1
            number = self.requests
        if self.mode == "huge":
            await self._huge(receive, send)
            return
        body = json.dumps({"predictions": [{
            "label": LABELS[7], "class_id": 7, "probabilities": list(probabilities(7)), "labels": list(LABELS),
            "model_version": "fake-1", "request_id": f"fake-{number:06d}",
            "ood": {"score": 9.5 if self.ood_flag else 0.4, "flag": self.ood_flag},
        }]}).encode()  # fmt: skip
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _huge(self, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        gone = asyncio.ensure_future(receive())  # http.disconnect, once the web app hangs up
        chunk = b'{"predictions": [' + b" " * (MB - 17)
        self.huge_sent = 0
        try:
            while self.huge_sent < self.huge_bytes and not gone.done():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                self.huge_sent += len(chunk)
            await send({"type": "http.response.body", "body": b"]}"})
        finally:
            gone.cancel()


@contextlib.contextmanager
def fake_endpoint() -> Iterator[tuple[FakeEndpoint, str]]:
    """The fake endpoint on a real uvicorn in a thread: ``(endpoint, predict URL)``."""
    endpoint = FakeEndpoint()
    with serve_in_thread(endpoint) as base:
        yield endpoint, f"{base}/predict"


# --------------------------------------------------------------------------- worst-case uploads


def budget_image(fmt: str = "WEBP", pixels: int = DEFAULT_IMAGE_PIXELS, pad_to: int = 0) -> bytes:
    """An image of exactly ``pixels`` (width twice the height) that costs the most to decode:
    semi-transparent RGBA, so decoding it needs every conversion. WebP (lossless) is the costliest
    (about 15 bytes per pixel while it is decoded); ``pad_to`` appends bytes the decoder ignores,
    so the upload is also as large as allowed."""
    height = int((pixels // 2) ** 0.5)
    size = (pixels // height, height)
    buf = io.BytesIO()
    Image.new("RGBA", size, (200, 10, 10, 100)).save(buf, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    data = buf.getvalue()
    return data + b"\0" * max(0, pad_to - len(data))


def multipart(data: bytes, name: str = "upload.webp") -> dict[str, Any]:
    return {"file": (name, data, "application/octet-stream")}


# --------------------------------------------------------------------------- clients


def post_upload(base: str, data: bytes, timeout: float = 90) -> int:
    """``POST /api/predict`` with ``data``: the status, or 0 when the connection failed."""
    try:
        return httpx.post(base + "/api/predict", files=multipart(data), timeout=timeout).status_code
    except httpx.HTTPError:
        return 0


def burst(base: str, data: bytes, n: int) -> list[int]:
    """``n`` uploads of ``data`` at once: their statuses."""
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: post_upload(base, data), range(n)))


@contextlib.contextmanager
def abusive_client(base: str, uploads: list[bytes], connections: int = 8) -> Iterator[list[int]]:
    """``connections`` threads uploading ``uploads`` (in turn) in a loop until the block ends;
    yields the statuses they got (filled in as they come)."""
    stop = threading.Event()
    codes: list[int] = []

    def abuse(data: bytes) -> None:
        with httpx.Client(timeout=90) as client:
            while not stop.is_set():
                try:
                    codes.append(client.post(base + "/api/predict", files=multipart(data)).status_code)
                except httpx.HTTPError:
                    codes.append(0)

    threads = [threading.Thread(target=abuse, args=(uploads[i % len(uploads)],)) for i in range(connections)]
    for t in threads:
        t.start()
    try:
        yield codes
    finally:
        stop.set()
        for t in threads:
            t.join(90)


def timed_uploads(base: str, data: bytes, n: int) -> tuple[list[float], list[int]]:
    """``n`` uploads one after the other from one keep-alive client: (seconds each, statuses)."""
    latencies: list[float] = []
    codes: list[int] = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(n):
            started = time.perf_counter()
            codes.append(client.post("/api/predict", files=multipart(data, "sample.png")).status_code)
            latencies.append(time.perf_counter() - started)
    return latencies, codes


# --------------------------------------------------------------------------- the web app process


def chart_memory_limit_mb() -> int:
    """``resources.limits.memory`` of the web app's Helm chart, in MiB."""
    value = str(yaml.safe_load((REPO / "helm" / "webapp" / "values.yaml").read_text())["resources"]["limits"]["memory"])
    units = {"Mi": 1, "Gi": 1024}
    return int(float(value[:-2]) * units[value[-2:]])



def _cgroup_root() -> tuple[Path, str] | None:
    """A writable memory cgroup under this process's own: ``(folder, version)``, or ``None``."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            base = Path("/sys/fs/cgroup") / path.lstrip("/")
            if "memory" in (base / "cgroup.controllers").read_text().split() and os.access(base, os.W_OK):
                return base, "v2"
        elif "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            if (base / "memory.limit_in_bytes").exists() and os.access(base, os.W_OK):
                return base, "v1"
    return None


@dataclass
class MemoryLimit:
    """Where the web app's memory is limited: a cgroup folder, or ``RLIMIT_AS``."""

    limit_mb: int
    cgroup: Path | None = None
    version: str = ""

    @property
    def how(self) -> str:
        return f"cgroup {self.version} memory limit" if self.cgroup else "RLIMIT_AS"

    def peak_mb(self) -> float | None:
        """The cgroup's peak usage (page cache of the process included), if there is a cgroup."""
        if self.cgroup is None:
            return None
        name = "memory.max_usage_in_bytes" if self.version == "v1" else "memory.peak"
        path = self.cgroup / name
        return int(path.read_text()) / MB if path.exists() else None

    def oom_kills(self) -> int:
        if self.cgroup is None:
            return 0
        if self.version == "v1":
            text = (self.cgroup / "memory.oom_control").read_text()
        else:
            text = (self.cgroup / "memory.events").read_text()
        return next((int(line.split()[1]) for line in text.splitlines() if line.startswith("oom_kill ")), 0)


@contextlib.contextmanager
def memory_limit(limit_mb: int) -> Iterator[MemoryLimit]:
    """A cgroup limited to ``limit_mb`` where one can be made (``EDGE_TEST_NO_CGROUP=1``: never)."""
    found = None if os.environ.get("EDGE_TEST_NO_CGROUP") == "1" else _cgroup_root()
    if found is None:
        yield MemoryLimit(limit_mb)
        return
    base, version = found
    folder = base / f"edge-webapp-{os.getpid()}-{time.monotonic_ns()}"
    try:
        folder.mkdir()
        if version == "v1":
            (folder / "memory.limit_in_bytes").write_text(str(limit_mb * MB))
        else:
            (folder / "memory.max").write_text(str(limit_mb * MB))
            (folder / "memory.swap.max").write_text("0")
    except OSError:
        with contextlib.suppress(OSError):
            folder.rmdir()
        yield MemoryLimit(limit_mb)
        return
    try:
        yield MemoryLimit(limit_mb, folder, version)
    finally:
        for _ in range(50):  # the process must be gone before the folder can go
            with contextlib.suppress(OSError):
                folder.rmdir()
                break
            time.sleep(0.1)


@dataclass
class WebappProcess:
    process: subprocess.Popen
    port: int
    log: Path
    limit: MemoryLimit

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def memory_mb(self) -> dict[str, float]:
        """VmRSS (now), VmHWM (peak resident) and VmPeak (peak address space) of the process."""
        text = Path(f"/proc/{self.process.pid}/status").read_text()
        return {
            line.split(":")[0]: int(line.split()[1]) / 1024
            for line in text.splitlines()
            if line.startswith(("VmRSS", "VmHWM", "VmPeak"))
        }

    def alive(self) -> bool:
        return self.process.poll() is None

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def webapp_process(
    endpoint_url: str, tmp: Path, *, limit_mb: int, address_space_mb: int | None = None,
    env: dict[str, str] | None = None, source: Path = REPO,
) -> Iterator[WebappProcess]:
    """``python -m vertex_edge.webapp`` (from ``source``, a checkout) on a free port, limited to
    ``limit_mb`` (a cgroup where possible, else ``RLIMIT_AS`` of ``address_space_mb``, default
    ``limit_mb``)."""
    port = free_port()
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    child_env.update({
        "PYTHONPATH": str(source), "EDGE_WEBAPP_PORT": str(port), "EDGE_WEBAPP_ENDPOINT_URL": endpoint_url,
        "EDGE_WEBAPP_LOG_FORMAT": "json",
        # as the container sets them (services/webapp/Dockerfile)
        "MALLOC_MMAP_THRESHOLD_": "1048576", "MALLOC_ARENA_MAX": "2", "OPENBLAS_NUM_THREADS": "1",
        **(env or {}),
    })  # fmt: skip
    log = tmp / f"webapp-{port}.log"
    with memory_limit(limit_mb) as limit:
        rlimit = (address_space_mb or limit_mb) * MB

        def confine() -> None:  # in the child, before exec
            if limit.cgroup is not None:
                (limit.cgroup / "cgroup.procs").write_text(str(os.getpid()))
            else:
                resource.setrlimit(resource.RLIMIT_AS, (rlimit, rlimit))

        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "vertex_edge.webapp"], cwd=source, env=child_env, stdout=out,
                stderr=subprocess.STDOUT, preexec_fn=confine,  # noqa: PLW1509 - sets the limit only
            )  # fmt: skip
        running = WebappProcess(process, port, log, limit)
        try:
            _wait_ready(running)
            yield running
        finally:
            stop(process)


def _wait_ready(app: WebappProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not app.alive():
            raise RuntimeError(f"the web app exited with {app.process.returncode}:\n{app.log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(app.url + "/healthz", timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the web app did not answer within {timeout} s:\n{app.log.read_text()[-3000:]}")
        time.sleep(0.1)
