"""Structured logs and the two ASGI middlewares: one request log line each, security headers and
a request id; and a hard cap on request bodies (uploads) checked while the body streams in."""

from __future__ import annotations

import logging
import re
import secrets
import sys
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vertex_edge.jsonlog import JsonFormatter

log = logging.getLogger("vertex_edge.webapp.requests")

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

#: Content-Security-Policy for every response: nothing is loaded from anywhere but this app.
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            text += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return text


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Send the web app's and uvicorn's logs to stderr, one line per event. Call once at start-up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    for name in ("vertex_edge", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # RequestLogMiddleware logs each request


def request_id(scope: Scope) -> str | None:
    return scope.get("state", {}).get("request_id")


class RequestLogMiddleware:
    """Log one structured line per HTTP request; add a request id and security headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        rid = incoming if incoming and _REQUEST_ID_RE.match(incoming) else secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = rid
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                present = {k.lower() for k, _ in headers}
                headers.extend(h for h in _SECURITY_HEADERS if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            fields = {
                "request_id": rid,
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": status,
                "duration_ms": round((time.perf_counter() - start) * 1000, 2),
                "client": (scope.get("client") or ("", 0))[0],
                **scope["state"].get("log_fields", {}),
            }
            log.info("%s %s %d", fields["method"], fields["path"], status, extra={"fields": fields})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class BodyTooLarge(HTTPException):
    """The request body is over the limit. An ``HTTPException``, so FastAPI's form parsing lets it
    through to the app's exception handlers (which answer 413 as a page or as JSON)."""

    def __init__(self, limit: int, size: int | None = None) -> None:
        super().__init__(status_code=413, detail="request body too large")
        self.limit = limit
        self.size = size


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes``: at once from ``Content-Length``, or as soon as a
    chunked body passes the limit - without reading the rest into memory or onto disk."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        try:
            length = int(declared) if declared is not None else None
        except ValueError:
            length = None
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if length is not None and length > self.max_bytes:
                raise BodyTooLarge(self.max_bytes, length)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)
