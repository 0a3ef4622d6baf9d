"""``edge.py serve`` (the prediction server for the endpoint's deployed version) and
``edge.py endpoint describe`` (versions, traffic and metadata)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Annotated, Any, Optional

import typer

from vertex_edge.cli.context import AppContext
from vertex_edge.errors import NotProvisionedError, UsageError
from vertex_edge.layout import LocalLayout
from vertex_edge.monitoring.settings import MonitoringConfig, MonitoringPaths
from vertex_edge.registry import LocalRegistry
from vertex_edge.serving.settings import ServerSettings
from vertex_edge.serving_status import ServingStatus, read_status

endpoint_app = typer.Typer(help="The local endpoint (versions, traffic, metadata).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(endpoint_app, name="endpoint")


def _registry(app_ctx: AppContext):  # noqa: ANN202 - LocalRegistry

    config = app_ctx.config()
    if config.target != "local":
        raise UsageError(
            f"edge.yaml target is {config.target!r}: 'serve' and 'endpoint describe' use the local registry",
            hint="on the gcp target the endpoint lives in Vertex AI (see the Google Cloud console)",
        )
    layout = LocalLayout.from_config(config, app_ctx.repo)
    return LocalRegistry(layout.registry, config.model.name)


def serve(
    ctx: typer.Context,
    port: Annotated[
        int, typer.Option("--port", envvar="AIP_HTTP_PORT", min=1, max=65535, help="Port (Vertex's AIP_HTTP_PORT).")
    ] = 8080,
    host: Annotated[
        str, typer.Option("--host", envvar="EDGE_HOST", help="Interface to listen on (0.0.0.0 for every one).")
    ] = "127.0.0.1",
    version: Annotated[
        Optional[str],
        typer.Option("--version", help="Serve this registered version instead of the endpoint's (no hot reload)."),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option("--follow/--no-follow", help="Swap in a new deployment without a restart (default on)."),
    ] = True,
) -> None:
    """Run the prediction server (the container's code and AIP_* contract) for the endpoint's
    deployed version.

    Routes come from AIP_HEALTH_ROUTE and AIP_PREDICT_ROUTE (default /health and /predict).
    While it runs, a 'python deploy-vertex.py' (or --rollback) is picked up within about a
    second: the new version is loaded and warmed up beside the old one, then swapped in, so no
    request is dropped. Stop it with Ctrl-C.
    """
    from rich.markup import escape

    app_ctx: AppContext = ctx.obj
    registry = _registry(app_ctx)
    if version is not None:
        chosen = registry.get(version)
    else:
        endpoint, _ = registry.endpoint()
        if endpoint is None or endpoint.serving_version is None:
            raise NotProvisionedError(
                f"the local endpoint has no deployed version ({registry.endpoint_file} is missing or empty)",
                hint="train with 'dvc repro', then run 'python deploy-vertex.py'",
            )
        chosen = registry.get(endpoint.serving_version)
    following = follow and version is None
    _check_port_free(host, port)
    config = app_ctx.config()
    records = MonitoringPaths.for_config(config, app_ctx.repo).records
    settings = ServerSettings.from_env(
        server_environ(config.monitoring, records, os.environ),
        storage_uri=str(chosen.path),
        port=port,
        host=host,
        # always told where the endpoint is: a server that does not follow it still reports what it
        # serves in serving-status.json, so deploy can say "restart it" instead of waiting in vain
        endpoint_file=str(registry.endpoint_file),
        follow=following,
    )
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - display only
    base = f"http://{shown_host}:{port}"
    console = app_ctx.console
    console.print(
        f"serving {escape(registry.model_name)} version {chosen.version} "
        f"(model {escape(chosen.card.version)}) on {base}"
    )
    console.print(
        f"  predict: POST {base}{escape(settings.predict_route)}   health: GET {base}{escape(settings.health_route)}"
    )
    console.print(
        "  following the endpoint: new deployments are swapped in without a restart"
        if following
        else "  not following the endpoint (--version/--no-follow): restart to serve another version"
    )
    console.print(f"  {escape(_capture_line(config.monitoring, records, os.environ))}")
    console.print("  logs: one JSON line per request on stderr; Ctrl-C stops")
    # deferred: the server imports FastAPI and uvicorn (about 0.5 s), which other edge.py commands would pay
    from vertex_edge.serving.__main__ import serve as run_server

    code = run_server(settings)
    if code:
        raise typer.Exit(code)


def server_environ(monitoring: MonitoringConfig, records: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment the server reads its settings from: ``edge.yaml``'s capture settings
    (records under the storage root, where 'edge.py monitor' reads them), under what the
    environment sets itself (an exported EDGE_CAPTURE_* wins)."""
    return {**monitoring.server_env(records), **environ}


def _capture_line(monitoring: MonitoringConfig, records: str, environ: Mapping[str, str]) -> str:
    env = server_environ(monitoring, records, environ)
    uri = env.get("EDGE_CAPTURE_URI", "").strip()
    rate = env.get("EDGE_CAPTURE_SAMPLE_RATE", "1").strip() or "1"
    if not uri or rate in ("0", "0.0"):
        return "capture: off (edge.yaml monitoring.capture / sample_rate, or EDGE_CAPTURE_*)"
    return f"capture: a record per prediction (sample rate {rate}, never the image) in {uri}; 'python edge.py monitor' reads them"


def _check_port_free(host: str, port: int) -> None:
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.bind((host, port))
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="another server may be running there; pass --port (or set AIP_HTTP_PORT) to use another port",
        ) from None


@endpoint_app.command("describe")
def describe(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    history: Annotated[int, typer.Option("--history", min=0, help="Show the last N deployments (0: all).")] = 10,
) -> None:
    """Registered versions with their metadata, the traffic map and the deployment history."""
    from rich.markup import escape
    from rich.table import Table

    app_ctx: AppContext = ctx.obj
    registry = _registry(app_ctx)
    endpoint, _ = registry.endpoint()
    versions = registry.versions()
    traffic = endpoint.traffic if endpoint else {}
    rows = [_summary(v.version, v.metadata, traffic.get(v.version, 0)) for v in versions]
    all_deployments = endpoint.history if endpoint else []
    deployments = all_deployments[-history:] if history else all_deployments
    status = read_status(registry.model_root)  # what a running 'edge.py serve' says it serves
    target = endpoint.serving_version if endpoint else None  # what the traffic map sends traffic to
    serving = status.serving_version if status else None
    if as_json:
        data: dict[str, Any] = {
            "model": registry.model_name,
            "registry": str(registry.model_root),
            "endpoint": endpoint.model_dump(mode="json") if endpoint else None,
            "traffic_version": target,
            "serving_version": serving,  # what a live server really serves (null: no server follows)
            "in_sync": status is not None and serving == target,
            "server": None if status is None else {**vars(status), "at": status.at.isoformat() if status.at else None},
            "versions": [{**v.metadata, "version": v.version, "traffic": traffic.get(v.version, 0)} for v in versions],
        }
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    console = app_ctx.console
    if not versions:
        console.print(
            f"no versions registered in {escape(str(registry.model_root))} yet: "
            "train with 'dvc repro', then run 'python deploy-vertex.py'"
        )
        return
    name = endpoint.name if endpoint else f"{registry.model_name}-endpoint"
    console.print(
        f"[bold]endpoint {escape(name)}[/]  traffic: "
        + (", ".join(f"version {v}: {p}%" for v, p in traffic.items()) or "none (not deployed)")
    )
    console.print(f"  serving: {_serving_line(status, target)}")
    table = Table(title=f"{registry.model_name} versions ({registry.model_root})")
    for col in ("version", "traffic", "model version", "registered", "test acc", "gate", "data", "commit", "run"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(escape(str(r[k])) for k in _COLUMNS))
    console.print(table)
    if deployments:
        hist = Table(title="deployments (newest last)")
        for col in ("at", "action", "version", "previous", "by", "note"):
            hist.add_column(col)
        for d in deployments:
            note = "; ".join(x for x in ("--force" if d.forced else "", d.note) if x) or "-"
            hist.add_row(d.at, d.action, d.version, d.previous or "-", d.by or "-", escape(note))
        console.print(hist)


def _serving_line(status: ServingStatus | None, target: str | None) -> str:
    """What the running server really serves, next to the traffic map (rich markup)."""
    from rich.markup import escape

    if status is None:
        then = f"; 'python edge.py serve' serves version {target}" if target else ""
        return f"nothing: no server follows this endpoint{then}"
    text = escape(status.describe())
    if status.serving_version != target:
        return f"[bold red]{text}[/] [red](not the traffic map's version {target or 'none'})[/]"
    return text


_COLUMNS = ("version", "traffic", "model_version", "created", "test_accuracy", "gate", "data_version", "commit", "run")


def _summary(version: str, meta: dict[str, Any], share: int) -> dict[str, str]:
    metrics = meta.get("metrics") or {}
    acc = metrics.get("test_accuracy")
    gate = meta.get("quality_gate") or {}
    git = meta.get("git") or {}
    commit = (git.get("commit") or "-")[:8] + ("+dirty" if git.get("dirty") else "")
    gate_text = "-"
    if isinstance(gate.get("min_accuracy"), (int, float)):
        forced = " (forced)" if gate.get("forced") and not gate.get("passed") else ""
        gate_text = f">= {gate['min_accuracy']:.4f}{forced}"
    return {
        "version": version,
        "traffic": f"{share}%",
        "model_version": str(meta.get("model_version") or "-"),
        "created": str(meta.get("created") or "-"),
        "test_accuracy": f"{acc:.4f}" if isinstance(acc, (int, float)) else "-",
        "gate": gate_text,
        "data_version": str(meta.get("data_version") or "-")[:20],
        "commit": commit,
        "run": str(meta.get("sacred_run_id") or "-"),
    }
