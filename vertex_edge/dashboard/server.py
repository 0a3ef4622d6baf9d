"""Run the experiments UI with uvicorn: one process, no reload, request logs only for problems."""

from __future__ import annotations

import ipaddress
import socket

import uvicorn

from vertex_edge.dashboard.app import LOOPBACK_HOSTS, create_app
from vertex_edge.dashboard.service import RunsService
from vertex_edge.errors import UsageError
from vertex_edge.webapp.logs import configure_logging
from vertex_edge.webapp.server import check_port_free

PORT_ENV = "EDGE_UI_PORT"
HOST_ENV = "EDGE_UI_HOST"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_port(host: str, port: int) -> int:
    """``port``, checked free on ``host``; 0 picks a free one. :class:`UsageError` when it is taken."""
    if port == 0:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((host.strip("[]"), 0))
            return int(sock.getsockname()[1])
    try:
        check_port_free(host.strip("[]"), port)
    except UsageError as exc:
        raise UsageError(
            exc.message, hint=f"pass --port (or {PORT_ENV}) with a free port, or --port 0 for any"
        ) from None
    return port


def url_for(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - displaying, not binding
    return f"http://{f'[{shown}]' if ':' in shown else shown}:{port}/"


def allowed_hosts(host: str) -> list[str]:
    """Host headers answered: loopback names when bound to loopback; any when bound wider (the
    user chose to expose it)."""
    return LOOPBACK_HOSTS if is_loopback(host) else ["*"]


def serve(service: RunsService, host: str, port: int, *, log_level: str = "warning") -> None:
    """Serve until Ctrl-C. ``port`` must come from :func:`resolve_port`."""
    configure_logging(log_level, "text")
    uvicorn.run(
        create_app(service, allowed_hosts=allowed_hosts(host)),
        host=host.strip("[]"),
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
