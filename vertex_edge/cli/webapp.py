"""``edge.py webapp``: run the web app in front of the deployed model on this machine."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vertex_edge.cli import setup_gcp
from vertex_edge.cli.context import AppContext
from vertex_edge.config import EdgeConfig
from vertex_edge.errors import UsageError
from vertex_edge.monitoring.settings import MonitoringPaths
from vertex_edge.webapp.logs import configure_logging
from vertex_edge.webapp.settings import ENV_VARS, WebappSettings

BACKENDS = ("http", "vertex")
FEEDBACK_ENV = "EDGE_FEEDBACK_URI"


def register(app: typer.Typer) -> None:
    app.command("webapp")(webapp)


def webapp(
    ctx: typer.Context,
    host: Annotated[
        Optional[str], typer.Option("--host", envvar="EDGE_WEBAPP_HOST", help="Interface to listen on (default 127.0.0.1).")
    ] = None,
    port: Annotated[
        Optional[int], typer.Option("--port", envvar="EDGE_WEBAPP_PORT", help="Port to listen on (default 8000).")
    ] = None,
    backend: Annotated[
        Optional[str],
        typer.Option(
            "--backend",
            envvar="EDGE_WEBAPP_BACKEND",
            help="'http' (a prediction server, the local target) or 'vertex' (a Vertex AI endpoint). "
            "Default: from edge.yaml's target (local -> http, gcp -> vertex).",
        ),
    ] = None,
    endpoint_url: Annotated[
        Optional[str],
        typer.Option(
            "--endpoint-url",
            envvar="EDGE_WEBAPP_ENDPOINT_URL",
            help="Predict URL of the prediction server (http backend; default http://127.0.0.1:8080/predict, "
            "the server 'python edge.py serve' starts).",
        ),
    ] = None,
    endpoint_id: Annotated[
        Optional[str],
        typer.Option("--endpoint-id", envvar="EDGE_ENDPOINT_ID", help="Vertex AI endpoint id (vertex backend)."),
    ] = None,
    timeout: Annotated[
        Optional[float],
        typer.Option("--timeout", envvar="EDGE_WEBAPP_TIMEOUT_S", help="Seconds to wait for the endpoint (default 10)."),
    ] = None,
    log_format: Annotated[
        Optional[str],
        typer.Option("--log-format", envvar="EDGE_WEBAPP_LOG_FORMAT", help="'text' or 'json' request logs (default text here)."),
    ] = None,
) -> None:
    """Serve the web app: upload a clothing image (or pick a sample) and see what the deployed model says.

    On the local target it calls the prediction server started by 'python edge.py serve'; on the
    gcp target the Vertex AI endpoint (project and region from edge.yaml, the endpoint from
    --endpoint-id, EDGE_ENDPOINT_ID or the gcp state). Other settings come from EDGE_WEBAPP_* variables
    (see services/webapp/README.md). Stop it with Ctrl-C.
    """
    # deferred: the web app imports FastAPI (about 0.5 s), which every other edge.py command would pay
    from vertex_edge.webapp.server import endpoint_listening, serve

    app_ctx: AppContext = ctx.obj
    config = app_ctx.config() if app_ctx.config_path.exists() else EdgeConfig()
    flags = {
        "host": host,
        "port": port,
        "backend": backend,
        "endpoint_url": endpoint_url,
        "endpoint_id": endpoint_id,
        "timeout_s": timeout,
        "log_format": log_format or "text",
    }
    environ = webapp_environ(config, app_ctx.repo, os.environ)
    settings = build_settings(config, flags, environ, lambda: _endpoint_from_state(app_ctx, config))
    configure_logging(settings.log_level, settings.log_format)
    # the web app runs in this process and reads its feedback location like its other EDGE_* settings
    os.environ.setdefault(FEEDBACK_ENV, environ[FEEDBACK_ENV])

    console = app_ctx.console
    console.print(f"web app: [bold]http://{_url_host(settings.host)}:{settings.port}/[/]  (Ctrl-C to stop)")
    console.print(f"predictions from the {settings.describe_endpoint()}")
    console.print(f"feedback (\"Was this right?\") to {environ[FEEDBACK_ENV]}; 'python edge.py monitor' joins it")
    if settings.backend == "http" and not endpoint_listening(settings.endpoint_url):
        console.print(
            "[yellow]warning:[/] nothing answers at that address yet; start the prediction server with "
            "'python edge.py serve' (the page shows an error until it is up)"
        )
    serve(settings)


def webapp_environ(config: EdgeConfig, repo: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment the web app reads its settings from: ``EDGE_FEEDBACK_URI`` is where
    'edge.py monitor' reads feedback for this target (``<storage root>/monitoring/<model>/feedback``
    locally, ``gs://<bucket>/monitoring/<model>/feedback`` on gcp), unless the environment sets it."""
    return {FEEDBACK_ENV: MonitoringPaths.for_config(config, repo).feedback, **environ}


def build_settings(
    config: EdgeConfig,
    flags: dict[str, Any],
    environ: Any,
    endpoint_from_state: Callable[[], str | None] | None = None,
) -> Any:
    """Web app settings: flags, then the environment, then edge.yaml (and, for the Vertex endpoint
    id, the gcp state via ``endpoint_from_state``), then defaults.

    Returns a :class:`~vertex_edge.webapp.settings.WebappSettings`; raises ``ConfigError``/``UsageError``.
    """

    backend = flags.get("backend")
    if backend is not None and backend not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    overrides = {k: v for k, v in flags.items() if v is not None}
    if "backend" not in overrides and not environ.get(ENV_VARS["backend"]):
        overrides["backend"] = "vertex" if config.target == "gcp" else "http"
    effective = overrides.get("backend") or (environ.get(ENV_VARS["backend"]) or "").strip().lower()
    if effective == "vertex":
        if config.gcp is not None:
            for name, value in (("project", config.gcp.project), ("region", config.gcp.region)):
                if name not in overrides and not environ.get(ENV_VARS[name]):
                    overrides[name] = value
        if "endpoint_id" not in overrides and not environ.get(ENV_VARS["endpoint_id"]):
            recorded = endpoint_from_state() if endpoint_from_state is not None and config.target == "gcp" else None
            if not recorded:
                raise UsageError(
                    "the vertex backend needs the Vertex AI endpoint id, and the gcp state records none",
                    hint="run 'python edge.py setup --target gcp', or pass --endpoint-id / set EDGE_ENDPOINT_ID",
                )
            overrides["endpoint_id"] = recorded
    return WebappSettings.from_env(environ, overrides)


def _endpoint_from_state(app_ctx: AppContext, config: EdgeConfig) -> str | None:
    """The endpoint ``edge.py setup --target gcp`` recorded (its full resource name), if any."""

    state, _ = setup_gcp.state_store(app_ctx, config).load()
    resource = state.resources.get("endpoint") if state is not None else None
    return resource.location if resource is not None and resource.location else None


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):  # noqa: S104 - displaying, not binding
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
