"""Hostile clients against the real prediction server process (``python -m vertex_edge.serving``)
run under an address-space limit (RLIMIT_AS), with bounded counts: the CPU amplifier of issue 13
(512 tiny PNGs of a megapixel each) and requests at the pixel budget while a well-behaved client
keeps its answers (no 5xx, p99 within a second, generous for a loaded CI machine); slow headers,
slow bodies, a body shorter than its Content-Length, huge and countless headers, an oversized
body; 32 concurrent worst-case requests stay within the memory budget and the server's memory
returns near its baseline afterwards."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from benchmarks.loadgen import run_load, synthetic_cnn
from tests.conftest import free_port
from tests.hostile import prediction_payloads as payloads
from tests.hostile.prediction_clients import Abuse, SlowConnections, memory_mb

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
#: the server's memory budget (peak RSS under 32 concurrent worst-case requests; measured about
#: 400 MB with the benchmark CNN, see benchmarks/README.md)
MEMORY_BUDGET_MB = 512
#: its address space (RLIMIT_AS): thread stacks, glibc and ONNX Runtime reservations come on top
#: of what is resident (measured VmPeak about 700 MB)
ADDRESS_SPACE_MB = 1024
TIMEOUT_S = 1.0  # header and body timeouts of the server under test


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def memory_mb(self) -> dict[str, float]:
        return memory_mb(self.process.pid)

    def alive(self) -> bool:
        return self.process.poll() is None


def _limit_address_space() -> None:  # runs in the child before exec
    limit = ADDRESS_SPACE_MB << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to read the server's memory")
    tmp = tmp_path_factory.mktemp("hostile")
    model = synthetic_cnn(tmp / "model")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIP_", "EDGE_"))}
    env.update(
        {
            "AIP_STORAGE_URI": str(model),
            "AIP_HTTP_PORT": str(port),
            "EDGE_HOST": "127.0.0.1",
            "PYTHONPATH": str(REPO),
            # as in the container (services/prediction/Dockerfile): no BLAS threads, two malloc arenas
            "OPENBLAS_NUM_THREADS": "1",
            "MALLOC_ARENA_MAX": "2",
            "EDGE_HTTP_HEADER_TIMEOUT_S": str(TIMEOUT_S),
            "EDGE_HTTP_BODY_TIMEOUT_S": str(TIMEOUT_S),
            "EDGE_REQUEST_DEADLINE_S": "4",
        }
    )
    log = tmp / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "vertex_edge.serving"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_limit_address_space,  # noqa: PLW1509
        )  # fmt: skip
    running = Server(process, port, log)
    deadline = time.monotonic() + 90
    while True:
        assert running.alive(), log.read_text()
        try:
            if httpx.get(running.url + "/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    yield running
    process.terminate()
    try:
        assert process.wait(timeout=30) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def post(server: Server, body: bytes, timeout: float = 30) -> httpx.Response:
    return httpx.post(
        server.url + "/predict", content=body, headers={"content-type": "application/json"}, timeout=timeout
    )


def exchange(server: Server, data: bytes, *, wait: float = 5.0) -> bytes:
    """Send ``data`` on a new connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def test_the_cpu_amplifier_does_not_starve_a_well_behaved_client(server: Server) -> None:
    """Abusive clients: the amplifier, requests at the pixel budget, 500 float images per request."""
    amplifier, heavy, numbers = payloads.amplifier(), payloads.at_pixel_budget("RGB"), payloads.costly_numbers()
    assert post(server, amplifier).status_code == 413  # refused from the headers, nothing decoded
    with Abuse(server.url + "/predict", [amplifier, amplifier, amplifier, heavy, numbers, numbers]) as abuse:
        time.sleep(1.0)  # the abusive clients are at it before the measured client starts
        good = run_load(server.port, "/predict", payloads.single_image(), concurrency=2, requests=300)
    assert good["errors"] == 0, good["error_samples"]  # every answer a 200: no 5xx
    assert good["p99_ms"] <= 1000, good
    assert set(abuse.codes) <= {200, 413, 503, 504} and 413 in abuse.codes, abuse.counts()
    assert server.alive()


def test_slow_headers_and_slow_bodies_are_closed_and_do_not_keep_clients_out(server: Server) -> None:
    slow = SlowConnections(server.port, 300)  # 150 trickling headers, 150 bodies: over the 256 connections
    left: list[int] = []
    trickling = threading.Thread(target=lambda: left.append(slow.trickle(TIMEOUT_S + 4)))
    trickling.start()  # a byte now and then is not enough to stay open
    try:
        time.sleep(1.5)  # the slow connections are there first
        good = run_load(server.port, "/predict", payloads.single_image(), concurrency=2, requests=200)
        trickling.join()
        answers = slow.answers()
    finally:
        slow.close()
    assert good["errors"] == 0, good["error_samples"]  # slow and idle connections made room for it
    assert left == [0], f"{left} connections still open {TIMEOUT_S + 4} s later"
    assert set(answers["headers"]) <= {408, 503, 0} and answers["headers"].count(408) > 100, answers["headers"]
    # a request beyond the connection limit is refused at once
    assert set(answers["body"]) <= {408, 503, 0} and answers["body"].count(408) >= 32, answers["body"]
    assert server.alive()


def test_a_short_body_huge_headers_and_an_oversized_body_are_refused(server: Server) -> None:
    short = exchange(server, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n{}")
    assert status_of(short) == 408
    huge = exchange(server, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (2 << 20) + b"\r\n\r\n")
    assert status_of(huge) == 431
    many = exchange(server, b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 10_000 + b"\r\n")
    assert status_of(many) == 431
    declared = exchange(server, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
    assert status_of(declared) == 413
    r = post(server, b'{"instances": [' + b" " * (2 << 20) + b"]}")
    assert r.status_code == 413 and "limit is 1,572,864 bytes" in r.json()["error"]["message"]
    assert server.alive()


def test_worst_case_requests_stay_within_the_memory_budget_and_memory_returns(server: Server) -> None:
    baseline = server.memory_mb()["VmRSS"]
    bodies = {"rgba": payloads.at_pixel_budget("RGBA"), "numbers": payloads.costly_numbers()}
    for name, body in bodies.items():
        with ThreadPoolExecutor(32) as pool:
            codes = list(pool.map(lambda _, b=body: post(server, b, timeout=60).status_code, range(32)))
        assert set(codes) <= {200, 503, 504}, (name, codes)  # answered, or refused as late/busy: never 500
        assert server.alive(), server.log.read_text()[-3000:]
    memory = server.memory_mb()
    assert memory["VmHWM"] <= MEMORY_BUDGET_MB, memory
    deadline = time.monotonic() + 10
    while server.memory_mb()["VmRSS"] > baseline + 80:  # freed memory goes back to the OS
        assert time.monotonic() < deadline, (baseline, server.memory_mb())
        time.sleep(0.5)
    assert httpx.get(server.url + "/health", timeout=5).status_code == 200
    errors = [json.loads(line) for line in server.log.read_text().splitlines() if '"severity": "ERROR"' in line]
    assert not errors, errors[:3]
