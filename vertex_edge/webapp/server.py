"""Run the web app with uvicorn: one process, structured logs, no debug, no reload."""

from __future__ import annotations

import errno
import socket

import uvicorn

from vertex_edge.errors import UsageError
from vertex_edge.httpserver import run, uvicorn_config
from vertex_edge.webapp.app import create_app
from vertex_edge.webapp.settings import WebappSettings


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`UsageError` if ``host:port`` cannot be bound (in use, or not an address here)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(
                    f"port {port} on {host} is already in use", hint="pass --port (or EDGE_WEBAPP_PORT) with a free port"
                ) from None
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}", hint="check --host/--port") from None


def endpoint_listening(url: str, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at ``url``'s host and port (no request is sent)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def serve(settings: WebappSettings) -> None:
    """Serve until interrupted. Logging must already be configured (:func:`.logs.configure_logging`)."""
    check_port_free(settings.host, settings.port)
    # the same connection hygiene as the prediction server (header/body/keep-alive timeouts, header
    # limits, connection and request caps, proxies trusted only from EDGE_TRUSTED_PROXIES)
    config = uvicorn_config(create_app(settings), host=settings.host, port=settings.port, limits=settings.http,
                            graceful_shutdown_s=10)  # fmt: skip
    run(uvicorn.Server(config))
