"""``python -m vertex_edge.serving``: the prediction server, configured by ``AIP_*`` variables.

Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT: requests in progress are answered, the
capture writes what it holds), 1 when the model cannot be loaded (or capture cannot start),
2 for invalid settings.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

import uvicorn

from vertex_edge.errors import EdgeError
from vertex_edge.httpserver import run, uvicorn_config
from vertex_edge.serving.app import create_app
from vertex_edge.serving.logs import configure_logging
from vertex_edge.serving.settings import ServerSettings


def serve(
    settings: ServerSettings,
    *,
    log_level: int = logging.INFO,
    on_started: Callable[[ServerSettings], None] | None = None,
) -> int:
    """Run uvicorn until it is stopped; return the exit code."""
    configure_logging(log_level)
    log = logging.getLogger("vertex_edge.serving")
    outcome = {"code": 0}
    server: uvicorn.Server | None = None

    def on_fatal(message: str) -> None:
        outcome["code"] = 1
        if server is not None:
            server.should_exit = True

    app = create_app(settings, on_fatal=on_fatal)
    # the app logs each request itself, as JSON; the limits are the connection hygiene of httpserver
    config = uvicorn_config(app, host=settings.host, port=settings.port, limits=settings.http, lifespan="on")
    server = uvicorn.Server(config)
    log.info(
        "listening on %s:%d (health %s, predict %s), model from %s",
        settings.host,
        settings.port,
        settings.health_route,
        settings.predict_route,
        settings.storage_uri,
    )
    if on_started is not None:
        on_started(settings)
    run(server)
    return outcome["code"]


def main() -> int:
    try:
        settings = ServerSettings.from_env(os.environ)
    except EdgeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)  # noqa: T201 - before logging is configured
        return exc.exit_code
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
