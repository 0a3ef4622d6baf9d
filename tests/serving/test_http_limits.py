"""Connection hygiene of the real server process (vertex_edge.httpserver under python -m
vertex_edge.serving): slow or missing headers and bodies are closed with a 408, oversized or too
many headers refused with 431, requests beyond the connection and request limits refused with
503 + Retry-After (health checks excepted), proxy headers ignored unless the proxy is trusted."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import RunningServer

pytestmark = pytest.mark.slow

LIMITS = {
    "EDGE_HTTP_HEADER_TIMEOUT_S": "3",
    "EDGE_HTTP_BODY_TIMEOUT_S": "0.5",
    "EDGE_HTTP_MAX_CONNECTIONS": "6",
    "EDGE_HTTP_MAX_REQUESTS": "2",
    "EDGE_HTTP_MAX_HEADER_BYTES": "4096",
    "EDGE_HTTP_MAX_HEADERS": "20",
}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    from tests.serving.conftest import start_server
    from tests.serving.tiny_model import write_model_dir

    tmp = tmp_path_factory.mktemp("limited")
    server = start_server({"AIP_STORAGE_URI": str(write_model_dir(tmp / "model")), **LIMITS}, tmp / "server.log")
    yield server
    server.stop()


def connect(server: RunningServer) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def exchange(server: RunningServer, data: bytes, *, wait: float = 5.0) -> tuple[float, bytes]:
    """Send ``data``, read until the server closes (or ``wait`` passes): (seconds, bytes)."""
    with connect(server) as sock:
        sock.settimeout(wait)
        started = time.monotonic()
        if data:
            sock.sendall(data)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except TimeoutError:
            out += b"<still open>"
        return time.monotonic() - started, out


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def error_of(response: bytes) -> dict:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])["error"]


def test_an_idle_connection_is_closed(limited: RunningServer) -> None:
    took, out = exchange(limited, b"")
    assert out == b"" and 2.5 < took < 6


def test_slow_headers_are_closed_with_408(limited: RunningServer) -> None:
    took, out = exchange(limited, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-")
    assert status_of(out) == 408 and took < 6
    assert error_of(out)["message"] == "the request headers did not arrive within 3 s"


def test_a_body_shorter_than_its_content_length_is_answered_408(limited: RunningServer) -> None:
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    took, out = exchange(limited, head + b'{"instances": [')
    assert status_of(out) == 408 and took < 3
    assert "body did not arrive within 0.5 s" in error_of(out)["message"]


@pytest.mark.parametrize(
    ("headers", "text"),
    [
        (b"X-Big: " + b"a" * 5000 + b"\r\n", "over 4,096 bytes"),
        (b"".join(b"X-%d: 1\r\n" % i for i in range(30)), "over 20 header lines"),
    ],
)
def test_oversized_or_too_many_headers_are_431(limited: RunningServer, headers: bytes, text: str) -> None:
    took, out = exchange(limited, b"GET /health HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert status_of(out) == 431 and took < 3
    assert text in error_of(out)["message"]


def test_requests_beyond_the_limit_get_503_with_retry_after(limited: RunningServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.hostile.prediction_payloads import body, png_b64

    slow = body([{"b64": png_b64(2048, 2048, "RGB")}] * 4)  # a few hundred ms of decoding each

    def post() -> httpx.Response:
        return httpx.post(limited.predict_url, content=slow, headers={"content-type": "application/json"}, timeout=60)

    with ThreadPoolExecutor(8) as pool:
        answers = [f.result() for f in [pool.submit(post) for _ in range(8)]]
        assert httpx.get(limited.health_url, timeout=5).status_code == 200  # health checks are never refused
    busy = [r for r in answers if r.status_code == 503]
    assert busy and all(r.status_code in (200, 503) for r in answers), [r.status_code for r in answers]
    assert busy[0].headers["retry-after"] == "1" and "2 requests are in progress" in busy[0].json()["error"]["message"]


def test_slow_uploads_do_not_take_the_places_of_requests(limited: RunningServer) -> None:
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    held = [connect(limited) for _ in range(3)]
    try:
        for sock in held:  # three requests (over EDGE_HTTP_MAX_REQUESTS) waiting for their bodies
            sock.sendall(head)
        time.sleep(0.1)
        assert httpx.post(limited.predict_url, json={"instances": [[0] * 784]}, timeout=5).status_code == 200
    finally:
        for sock in held:
            sock.close()


def test_under_pressure_slow_and_idle_connections_make_room(limited: RunningServer) -> None:
    held = [connect(limited) for _ in range(6)]  # the limit, idle
    try:
        time.sleep(1.2)  # idle for over a second: evicted when a new client needs room
        r = httpx.post(limited.predict_url, json={"instances": [[0] * 784]}, timeout=5)
        assert r.status_code == 200
    finally:
        for sock in held:
            sock.close()


def test_connections_beyond_the_limit_are_refused(limited: RunningServer) -> None:
    held = [connect(limited) for _ in range(6)]
    try:
        time.sleep(0.1)
        body = json.dumps({"instances": [[0] * 784]}).encode()
        request = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        took, out = exchange(limited, request % len(body) + body)
        assert status_of(out) == 503 and b"retry-after: 1" in out and took < 3
        assert "over 6 connections are open" in error_of(out)["message"]
        assert httpx.get(limited.health_url, timeout=5).status_code == 200  # health checks are never refused
    finally:
        for sock in held:
            sock.close()


def test_forwarded_headers_are_not_trusted_by_default(limited: RunningServer, tmp_path: Path) -> None:
    from vertex_edge.serving.settings import ServerSettings

    settings = ServerSettings.from_env({"AIP_STORAGE_URI": str(tmp_path)})
    assert settings.http.trusted_proxies == ()
    from vertex_edge.httpserver import uvicorn_config

    config = uvicorn_config(object(), host="127.0.0.1", port=1, limits=settings.http)
    assert config.proxy_headers is False
    trusted = uvicorn_config(
        object(), host="127.0.0.1", port=1, limits=ServerSettings.from_env(
            {"AIP_STORAGE_URI": str(tmp_path), "EDGE_TRUSTED_PROXIES": "10.0.0.0/8"}).http
    )  # fmt: skip
    assert trusted.proxy_headers is True and trusted.forwarded_allow_ips == ["10.0.0.0/8"]
