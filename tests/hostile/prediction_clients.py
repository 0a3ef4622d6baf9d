"""Hostile clients for the prediction server (tests/hostile and ``benchmarks.serving --hostile``):
abusive request loops in threads, connections that trickle their headers or bodies, and the
server process's memory as /proc reports it."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import TracebackType

import httpx

_HEAD = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n"


class Abuse:
    """``threads`` clients posting ``body`` back to back while the ``with`` block runs; the
    status codes they got are in :attr:`codes`."""

    def __init__(self, url: str, bodies: list[bytes]) -> None:
        self.url = url
        self.bodies = bodies
        self.codes: list[int] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(b,), daemon=True) for b in bodies]

    def _run(self, body: bytes) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                try:
                    r = client.post(self.url, content=body, headers={"content-type": "application/json"})
                    self.codes.append(r.status_code)
                except httpx.HTTPError:
                    self.codes.append(0)

    def __enter__(self) -> Abuse:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def counts(self) -> dict[int, int]:
        return {code: self.codes.count(code) for code in sorted(set(self.codes))}


class SlowConnections:
    """``count`` connections, half trickling header lines, half trickling a body (one byte or
    line every 0.25 s, each connection sends a request that never ends)."""

    def __init__(self, port: int, count: int) -> None:
        self.socks: list[tuple[socket.socket, bytes, str]] = []
        for i in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            if i % 2:
                sock.sendall(_HEAD)
                self.socks.append((sock, b"x-slow: 1\r\n", "headers"))
            else:
                sock.sendall(_HEAD + b'\r\n{"instances": [')
                self.socks.append((sock, b" ", "body"))

    def trickle(self, seconds: float) -> int:
        """Keep trickling for up to ``seconds`` (until every connection is closed); the number
        still open at the end."""
        deadline = time.monotonic() + seconds
        while True:
            open_ = 0
            for sock, more, _ in self.socks:
                try:
                    sock.sendall(more)
                    open_ += 1
                except OSError:
                    pass
            if not open_ or time.monotonic() >= deadline:
                return open_
            time.sleep(0.25)

    def answers(self) -> dict[str, list[int]]:
        """The status each connection was answered with, by kind (0: none, the connection reset)."""
        out: dict[str, list[int]] = {"headers": [], "body": []}
        for sock, _, kind in self.socks:
            sock.settimeout(5)
            try:
                data = sock.recv(4096)
                out[kind].append(int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0)
            except OSError:
                out[kind].append(0)
        return out

    def close(self) -> None:
        for sock, _, _ in self.socks:
            sock.close()


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (resident now) and VmHWM (its peak) of process ``pid``, in MB."""
    text = Path(f"/proc/{pid}/status").read_text()
    return {
        line.split(":")[0]: int(line.split()[1]) / 1024 for line in text.splitlines() if line.startswith(("VmRSS", "VmHWM"))
    }
