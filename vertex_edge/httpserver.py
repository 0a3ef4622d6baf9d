"""The HTTP server under both of the project's web servers: uvicorn (httptools) with connection
limits and timeouts set deliberately, including the header-read timeout uvicorn lacks.

uvicorn bounds only the idle time between two requests of a connection (``timeout_keep_alive``,
reset by every byte received), so a client that trickles its headers or its body one byte at a
time, or never sends the rest of a body shorter than its Content-Length, holds a connection
forever; it also accepts headers of any size and number. :class:`LimitedProtocol` (a subclass
of uvicorn's ``HttpToolsProtocol``, ASGI middleware cannot help: it runs only once the headers
are in) adds, each O(1) per request:

* ``header_timeout_s``: request line and headers not complete this long after the connection
  opened or the request's first byte: 408, closed;
* ``body_timeout_s``: body not complete this long after the headers (slow, or shorter than its
  Content-Length): 408, closed; ``keep_alive_s``: idle between requests: closed (uvicorn's own);
* ``max_header_bytes``, ``max_headers``: the request line and headers, the header lines: 431;
* ``max_connections``: a request on a connection beyond it: 503, closed; over 3/4 of it, a new
  connection first closes the slow and idle ones (:data:`PRESSURE_S`);
* ``max_requests``: requests being answered at once (receiving bodies not counted; every path
  but ``exempt_paths``): 503.

Refusals carry ``Retry-After`` (503) and the JSON error body of the prediction server
(:func:`error_document`). Proxy headers (``X-Forwarded-For``/``-Proto``) are trusted only from
``trusted_proxies`` (none by default: the client address is the socket's).

Typed API: :class:`HttpLimits` (``from_env``: the ``EDGE_HTTP_*`` variables), :func:`uvicorn_config`,
:func:`run` (exit 0 after a graceful SIGTERM/SIGINT shutdown, instead of uvicorn re-raising
the signal) and :func:`trim_heap` (memory freed after a burst of large uploads goes back to the OS
instead of staying resident).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import http
import ipaddress
import json
import logging
import signal
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # needs httptools (uvicorn[standard])

from vertex_edge.envvars import Kind, read_env
from vertex_edge.errors import ConfigError

log = logging.getLogger("vertex_edge.httpserver")

#: the ``status`` word of each error code (Google API style, as Vertex AI answers)
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    408: "REQUEST_TIMEOUT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    431: "REQUEST_HEADER_FIELDS_TOO_LARGE",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

#: the numeric :class:`HttpLimits` fields and their allowed ranges; each is ``EDGE_HTTP_<FIELD>``
_RANGES = {"header_timeout_s": (0.1, 3600), "body_timeout_s": (0.1, 3600), "keep_alive_s": (0.1, 3600),
           "max_header_bytes": (1024, 1 << 20), "max_headers": (8, 10_000), "max_connections": (1, 100_000),
           "max_requests": (1, 100_000), "retry_after_s": (0, 3600)}  # fmt: skip


def error_document(code: int, message: str, details: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """``{"error": {"code", "status", "message", "details"}}``: every error body of the servers."""
    return {"error": {"code": code, "status": STATUS_NAMES.get(code, "ERROR"), "message": message, "details": list(details)}}


@dataclass(frozen=True)
class HttpLimits:
    """Connection limits and timeouts (see the module docstring for what each does)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: float = 5.0
    max_header_bytes: int = 16_384
    max_headers: int = 100
    max_connections: int = 256
    max_requests: int = 64
    retry_after_s: int = 1
    trusted_proxies: tuple[str, ...] = ()
    exempt_paths: tuple[str, ...] = field(default=())  # never refused for capacity (health checks)

    def __post_init__(self) -> None:
        problems = []
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name)
            if not low <= value <= high:
                problems.append(f"EDGE_HTTP_{name.upper()}={value}: expected {low}..{high}")
        for entry in self.trusted_proxies:
            if entry != "*":
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    problems.append(f"EDGE_TRUSTED_PROXIES entry {entry!r}: expected an IP address or network, or '*'")
        if problems:
            raise ConfigError("invalid HTTP server limits:\n  - " + "\n  - ".join(problems))

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> HttpLimits:
        """Limits from the ``EDGE_HTTP_*`` variables and ``EDGE_TRUSTED_PROXIES`` (a comma-separated
        list of addresses or networks); ``overrides`` win."""
        values = read_env(env, ENV)
        values.update(overrides)
        return cls(**values)


#: environment variable -> (:class:`HttpLimits` field, the kind of its default)
ENV: dict[str, tuple[str, Kind]] = {
    **{f"EDGE_HTTP_{name.upper()}": (name, type(getattr(HttpLimits, name))) for name in _RANGES},
    "EDGE_TRUSTED_PROXIES": ("trusted_proxies", tuple),
}


# ---------------------------------------------------------------------------------- protocol

_IDLE, _HEADERS, _BODY = range(3)  # where a connection is: between requests (or answering one), reading one


class _HeadersTooLarge(Exception):
    """Raised from a parser callback: httptools stops parsing and ``data_received`` answers 431."""


#: how long a refused connection is still read (and dropped) after its answer, before the close
LINGER_S = 2.0

#: under pressure (over 3/4 of max_connections open), what a new connection closes: connections
#: idle, or reading their headers, for over 1 s, and reading their body for over 5 s (1.5 MB at
#: 300 KB/s)
PRESSURE_S = {"idle": 1.0, "headers": 1.0, "body": 5.0}

#: set in the ASGI scope of a request whose body timed out (the application logs it as 408)
TIMED_OUT = "vertex_edge.timed_out"


def _raw_response(code: int, message: str) -> bytes:
    body = json.dumps(error_document(code, message), separators=(",", ":")).encode()
    head = (f"HTTP/1.1 {code} {http.HTTPStatus(code).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")  # fmt: skip
    return head.encode("latin-1") + body


class _Count:
    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


class LimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :class:`HttpLimits` (made by :func:`protocol_for`)."""

    limits: ClassVar[HttpLimits] = HttpLimits()
    _exempt: ClassVar[frozenset[bytes]] = frozenset()
    # requests of the server receiving their bodies (one class per server). A mutable holder: setting
    # a class attribute per request would invalidate CPython's attribute caches for the class
    _receiving: ClassVar[_Count]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _IDLE
        self._since = 0.0  # when the current phase started (loop time)
        self._timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._began = False  # a byte of a request has arrived on this connection
        self._big_chunk = False  # a read larger than max_header_bytes arrived before the headers ended
        self._lingering = False  # an error was answered: reading and dropping until the close
        self._counted = False  # counted in the class's _receiving (headers in, body not yet)
        self._refused: str | None = None  # why the parser was stopped (431)
        self._over_capacity = False  # this connection is beyond max_connections

    # ------------------------------------------------------------------ connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._phase, self._since = _HEADERS, self.loop.time()  # the first request must arrive in time
        count = len(self.connections)
        if count > self.limits.max_connections * 3 // 4:  # under pressure: the slow ones make room
            count -= self._evict_slow()
        self._over_capacity = count > self.limits.max_connections
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._body_done()
        super().connection_lost(exc)

    def _evict_slow(self) -> int:
        """Close the connections that are slow under pressure (see :data:`PRESSURE_S`): a flood
        of slow or idle connections cannot keep a new client out. Returns how many."""
        now = self.loop.time()
        evicted = 0
        for other in list(self.connections):
            if other is self or not isinstance(other, LimitedProtocol) or other.transport.is_closing():
                continue
            idle = other._phase == _IDLE and (other.cycle is None or other.cycle.response_complete)
            phase = "idle" if idle else {_HEADERS: "headers", _BODY: "body"}.get(other._phase)
            if phase is not None and now - other._since > PRESSURE_S[phase]:
                other._time_out(phase, PRESSURE_S[phase])
                evicted += 1
        if evicted:
            log.warning("%d connections open: closed %d slow or idle ones", len(self.connections), evicted)
        return evicted

    def data_received(self, data: bytes) -> None:
        # uvicorn's own, but a request refused by a header limit answers 431 (not "invalid request")
        if self._lingering:
            return  # refused: what the client still sends is read and dropped until the close
        self._unset_keepalive_if_required()
        if len(data) > self.limits.max_header_bytes:
            self._big_chunk = True  # headers completed in this read are measured exactly
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            if self._refused is not None:
                self._refuse_headers()
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        if self._phase == _HEADERS:  # the headers are still incomplete after this read
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._refused = f"the request line and headers are over {self.limits.max_header_bytes:,} bytes"
                self._refuse_headers()
                return
        if self._phase != _IDLE and not self.transport.is_closing():
            self._arm()  # (the request is incomplete after this read: rare, not on the common path)

    def _arm(self) -> None:
        """Make sure the timer fires by the current phase's deadline (one timer per connection)."""
        limit = self.limits.header_timeout_s if self._phase == _HEADERS else self.limits.body_timeout_s
        when = self._since + limit
        if self._timer is not None:
            if self._timer.when() <= when:
                return
            self._timer.cancel()
        self._timer = self.loop.call_at(when, self._expired)

    def _expired(self) -> None:
        """The timer: close a request that is late with its headers or body (re-armed when the
        request moved on since it was set)."""
        self._timer = None
        if self._phase == _IDLE or self.transport.is_closing():
            return
        limit = self.limits.header_timeout_s if self._phase == _HEADERS else self.limits.body_timeout_s
        if self.loop.time() < self._since + limit - 0.001:
            self._arm()
            return
        self._time_out("headers" if self._phase == _HEADERS else "body", limit)

    def _time_out(self, what: str, limit: float) -> None:
        """Close a request late with its ``what`` (``headers``, ``body``; ``idle``: no request):
        408 when it has begun and nothing else is being answered on the connection."""
        if what == "idle" or not self._began:
            log.info("closing a connection that sent no request in %g s", limit,
                     extra={"fields": {"client": self._client(), "timeout": "idle"}})  # fmt: skip
            self.transport.close()
            return
        log.warning("closing a connection whose request %s took over %g s", what, limit,
                    extra={"fields": {"client": self._client(), "timeout": what}})  # fmt: skip
        cycle = self.cycle if self._phase == _BODY else None
        if cycle is not None:  # the application waiting for the body sees a disconnect
            cycle.scope[TIMED_OUT] = True  # type: ignore[literal-required]
            cycle.disconnected = True
            cycle.message_event.set()
        busy = self.cycle is not None and not self.cycle.response_complete  # (pipelined: answering one)
        if not busy if cycle is None else not cycle.response_started:
            self._answer_and_close(_raw_response(408, f"the request {what} did not arrive within {limit:g} s"))
        else:
            self.transport.close()

    def _answer_and_close(self, response: bytes) -> None:
        """Write ``response``, then close "lingering": our side is shut at once, what the client
        still sends is dropped for up to :data:`LINGER_S` so that it reads the answer (closing with
        unread data would reset the connection and lose it)."""
        self.transport.write(response)
        self._lingering = True
        self._body_done()
        self._phase = _IDLE
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)
        else:  # pragma: no cover - TLS transports cannot half-close
            self.transport.close()

    # ------------------------------------------------------------------ parser callbacks
    # (only three overridden, each a few attribute stores: they run on every request)
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase, self._since, self._header_bytes, self._began = _HEADERS, self.loop.time(), 0, True

    def on_headers_complete(self) -> None:  # raising here stops httptools: data_received answers 431
        self._phase, self._since = _BODY, self.loop.time()
        limits = self.limits
        if len(self.headers) > limits.max_headers:
            self._refused = f"the request has over {limits.max_headers} header lines"
            raise _HeadersTooLarge
        if self._header_bytes or self._big_chunk:  # headers over several reads, or one large read
            self._big_chunk = False
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            if size > limits.max_header_bytes:
                self._refused = f"the request line and headers are over {limits.max_header_bytes:,} bytes"
                raise _HeadersTooLarge
        receiving = self._receiving
        # requests still receiving their bodies are bounded by the connection limit and the body
        # timeout, not counted here: slow uploads cannot take the places of requests being answered
        busy = self._over_capacity or len(self.tasks) - receiving.n >= limits.max_requests
        receiving.n += 1
        self._counted = True
        if busy and self._capacity_applies():
            app, self.app = self.app, self._busy
            try:
                super().on_headers_complete()
            finally:
                self.app = app
            return
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._body_done()
        self._phase = _IDLE  # answered next; then uvicorn's keep-alive timer runs until the next request

    def _body_done(self) -> None:
        if self._counted:
            self._counted = False
            self._receiving.n -= 1

    def _refuse_headers(self) -> None:
        log.warning("refused a request: %s", self._refused, extra={"fields": {"client": self._client()}})
        self._answer_and_close(_raw_response(431, f"{self._refused}; send fewer or smaller headers"))

    def _client(self) -> str | None:
        return self.client[0] if self.client else None

    # ------------------------------------------------------------------ capacity
    def _capacity_applies(self) -> bool:
        return not self._exempt or self.url.split(b"?", 1)[0] not in self._exempt

    async def _busy(self, scope: Any, receive: Any, send: Any) -> None:
        """The answer beyond max_connections/max_requests: 503 + Retry-After, connection closed."""
        limits = self.limits
        reason = (f"over {limits.max_connections} connections are open" if self._over_capacity
                  else f"{limits.max_requests} requests are in progress")  # fmt: skip
        body = json.dumps(error_document(503, f"the server is busy ({reason}); retry in {limits.retry_after_s} s"))
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)),
                   (b"retry-after", str(limits.retry_after_s).encode()), (b"connection", b"close")]  # fmt: skip
        log.warning("refused a request: %s", reason, extra={"fields": {"client": self._client()}})
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body.encode()})


def protocol_for(limits: HttpLimits) -> type[LimitedProtocol]:
    """A :class:`LimitedProtocol` class bound to ``limits`` (uvicorn instantiates it per connection)."""
    exempt = frozenset(p.encode() for p in limits.exempt_paths)
    # one class per server: _receiving counts that server's requests receiving their bodies
    return type("LimitedProtocol", (LimitedProtocol,), {"limits": limits, "_exempt": exempt, "_receiving": _Count()})


# ---------------------------------------------------------------------------------- server


def uvicorn_config(app: Any, *, host: str, port: int, limits: HttpLimits, graceful_shutdown_s: int = 30,
                   **extra: Any) -> uvicorn.Config:  # fmt: skip
    """The uvicorn configuration both servers run with: ``limits`` applied, no uvicorn access log
    (the applications log each request themselves), no Server header, no websockets."""
    trusted = list(limits.trusted_proxies)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_for(limits),
        ws="none",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        timeout_keep_alive=limits.keep_alive_s,  # type: ignore[arg-type] - uvicorn takes a float too
        timeout_graceful_shutdown=graceful_shutdown_s,
        **extra,
    )


def run(server: uvicorn.Server) -> None:
    """Run ``server`` until it stops. SIGTERM and SIGINT shut it down gracefully and the process
    then goes on (uvicorn re-raises the signal once it has stopped; here it is absorbed)."""
    if threading.current_thread() is not threading.main_thread():
        server.run()
        return
    previous = {sig: signal.signal(sig, _absorb) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _absorb(signum: int, frame: object) -> None:
    """What uvicorn's re-raised signal reaches after a graceful shutdown: nothing more to do."""


def trim_heap() -> bool:
    """Give the memory the heap holds free back to the OS (glibc ``malloc_trim``; False where it
    does not apply). After a burst of large uploads, freed blocks otherwise stay resident: a
    server that decoded a few 64 MB images kept ~170 MB it no longer used. Costs a few
    milliseconds: call it off the event loop, when the burst is over."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False
