"""``edge.py experiments``: list, show and compare Sacred runs, and serve the experiments UI,
from whichever store is configured (the file store, or MongoDB - on the gcp target through a
port-forward held open meanwhile). All read through :class:`~vertex_edge.dashboard.service.RunsService`."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from vertex_edge.cli import setup_gcp
from vertex_edge.cli.context import AppContext
from vertex_edge.dashboard.lineage import LocalLineage, NoLineage
from vertex_edge.dashboard.service import MAX_COMPARED, RunsService, StoreInfo
from vertex_edge.dashboard.text import duration, number, param, percent, when
from vertex_edge.errors import UsageError
from vertex_edge.gcp.sacred import tracking_environment
from vertex_edge.layout import LocalLayout
from vertex_edge.registry import LocalRegistry
from vertex_edge.tracking.runs import FileExperimentStore, MongoExperimentStore
from vertex_edge.tracking.target import connect_mongo, resolve_tracking

exp_app = typer.Typer(help="Experiment tracking (Sacred runs).", no_args_is_help=True)
GCP_REGISTRY_NOTE = "registry versions live in the Vertex AI Model Registry, which this view does not query"
STATUS_STYLE = {"COMPLETED": "green", "RUNNING": "blue", "FAILED": "red", "CORRUPT": "red", "DEAD": "bold red",
                "INTERRUPTED": "yellow", "QUEUED": "cyan"}  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(exp_app, name="experiments")


def tracking_target(app_ctx: AppContext, env: Mapping[str, str], *, offline: bool = False):  # noqa: ANN201
    config = app_ctx.config()
    layout = LocalLayout.from_config(config, app_ctx.repo)
    return resolve_tracking(
        enabled=config.tracking.enabled,
        mongodb_url=config.tracking.mongodb_url,
        mongodb_db=config.tracking.mongodb_db,
        file_store=layout.experiments,
        env=env,
        offline=offline,
    )


@contextlib.contextmanager
def open_store(app_ctx: AppContext) -> Iterator[tuple[Any, Any]]:
    """The configured run store (on the gcp target through a port-forward held open meanwhile)."""
    with tracking_environment(app_ctx.config(), os.environ) as env:
        target = tracking_target(app_ctx, env)
        if target.kind == "off":
            raise UsageError(
                "experiment tracking is off (EDGE_OFFLINE or tracking.enabled: false): there are no runs to show"
            )
        if target.kind == "file":
            yield target, FileExperimentStore(target.path)
        else:
            yield target, MongoExperimentStore(connect_mongo(target), target.db)


@contextlib.contextmanager
def open_service(app_ctx: AppContext) -> Iterator[RunsService]:
    """The runs of the configured store, joined to the local registry (none on the gcp target)."""
    config = app_ctx.config()
    with open_store(app_ctx) as (target, store):
        if config.target == "gcp":
            lineage: Any = NoLineage(GCP_REGISTRY_NOTE)
        else:
            layout = LocalLayout.from_config(config, app_ctx.repo)
            lineage = LocalLineage(LocalRegistry(layout.registry, config.model.name))
        yield RunsService(store, StoreInfo(target.describe(), config.target), lineage)


def _status(row: dict[str, Any]) -> str:
    text = row["status"]
    if text == "RUNNING" and row.get("epoch"):
        text += f" {row['epoch']}/{row.get('epochs') or '?'}"
    return f"[{STATUS_STYLE.get(row['status'], 'default')}]{escape(text)}[/]" + (
        " [yellow]![/]" if row["problems"] else ""
    )


def _commit(row: dict[str, Any]) -> str:
    return ((row.get("commit") or "")[:8] + ("+dirty" if row.get("dirty") else "")) or "—"


def _registry(row: dict[str, Any]) -> str:
    return (
        ", ".join(
            f"v{link['version']}" + (f" ({link['traffic']}%)" if link["traffic"] else "") for link in row["registry"]
        )
        or "—"
    )


def _gate(value: Any) -> str:
    return {True: "[green]passed[/]", False: "[red]failed[/]"}.get(value, "—")


@exp_app.command("list")
def list_runs(
    ctx: typer.Context,
    last: Annotated[int, typer.Option("--last", "-n", min=0, help="Show only the last N runs (0: all).")] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (every field of every run) instead of a table.")
    ] = False,
) -> None:
    """A table of runs: status (DEAD when a RUNNING run's heartbeat stopped), start, duration, commit,
    data version, DVC experiment, the params that differ between the listed runs, test accuracy,
    the quality gate and the registry version made from it."""
    app_ctx: AppContext = ctx.obj
    with open_service(app_ctx) as service:
        data = service.table(full=as_json)
    rows = data["runs"][-last:] if last else data["runs"]
    if as_json:
        app_ctx.console.print_json(json.dumps(rows))
        return
    if not rows:
        app_ctx.console.print(f"no runs yet in {data['store']}; run 'dvc repro' to train")
        return
    changed = [k for k in data["param_keys"] if len({json.dumps(r["params"].get(k)) for r in rows}) > 1]
    table = Table(title=f"experiments ({escape(data['store'])})", title_justify="left")
    for col in (
        "id",
        "status",
        "start",
        "took",
        "commit",
        "data",
        "dvc exp",
        "params that differ",
        "test acc",
        "gate",
        "registry",
    ):
        table.add_column(col, justify="right" if col in ("id", "took", "test acc") else "left")
    for r in rows:
        params = " ".join(f"{k}={param(r['params'][k])}" for k in changed if k in r["params"]) or "—"
        table.add_row(
            r["id"], _status(r), when(r.get("start"))[:16], duration(r.get("duration_s")), _commit(r),
            (r.get("data_version") or "—")[:8], escape(r.get("dvc_experiment") or "—"), escape(params),
            number(r.get("test_accuracy")), _gate(r.get("gate_passed")), _registry(r),
        )  # fmt: skip
    app_ctx.console.print(table)
    if not changed and len(rows) > 1:
        app_ctx.console.print("[dim]the listed runs have the same params[/]")
    if data["registry_note"]:
        app_ctx.console.print(f"[dim]registry: {escape(data['registry_note'])}[/]")


@exp_app.command("show")
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run id (see 'experiments list').")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the run's whole Sacred document as JSON.")] = False,
    output_lines: Annotated[int, typer.Option("--output-lines", min=0, help="Lines of captured output to show.")] = 15,
) -> None:
    """One run, readable: status, source, results, model and registry version, params, per-epoch
    metrics, artifacts, the commands that reproduce it, and the end of its output."""
    app_ctx: AppContext = ctx.obj
    with open_service(app_ctx) as service:
        if as_json:
            raw = service.store.get_run(run_id)
            if raw is not None:
                app_ctx.console.print_json(json.dumps(_jsonable(raw), default=str))
                return
        run = None if as_json else service.detail(run_id)
        describe = service.info.description
    if run is None:
        raise UsageError(f"no run with id {run_id!r} in {describe}", hint="see 'python edge.py experiments list'")
    out = app_ctx.console
    out.print(f"[bold]run {escape(run['id'])}[/]  {_status(run)}  {escape(run.get('name') or '')}")
    for problem in run["problems"]:
        out.print(f"  [yellow]could not read: {escape(problem)}[/]")
    facts = [
        ("started", when(run.get("start"))), ("stopped", when(run.get("stop"))), ("duration", duration(run.get("duration_s"))),
        ("host", run.get("host") or "—"), ("backend", (run.get("backend") or "—") + (f" ({run['vertex_job']})" if run.get("vertex_job") else "")),
        ("git commit", (run.get("commit") or "—") + ("  (uncommitted changes)" if run.get("dirty") else "")),
        ("data version", run.get("data_version") or "—"),
        ("DVC experiment", (run.get("dvc_experiment") or "—") + (f" on {run['dvc_baseline'][:8]}" if run.get("dvc_baseline") else "")),
        ("test accuracy", f"{percent(run.get('test_accuracy'))}  loss {number(run.get('test_loss'))}"),
        ("quality gate", _gate(run.get("gate_passed")) + (f" (min {percent(run['gate_min_accuracy'])})" if run.get("gate_min_accuracy") is not None else "")),
        ("model sha256", run.get("model_sha256") or "—"), ("registry", _registry(run)),
    ]  # fmt: skip
    for label, value in facts:
        out.print(f"  [dim]{label:<15}[/] {value if label in ('quality gate',) else escape(str(value))}")
    _print_epochs(out, run)
    if run["params"]:
        out.print("[bold]params[/]  " + escape("  ".join(f"{k}={param(v)}" for k, v in run["params"].items())))
    if run["artifacts"]:
        out.print("[bold]artifacts[/]  " + escape(", ".join(run["artifacts"])))
    out.print("[bold]reproduce[/]")
    for step in run["reproduce"]:
        out.print(f"  {escape(step['command'])}\n    [dim]{escape(step['note'])}[/]")
    if run.get("fail_trace"):
        out.print("[bold red]failure[/]\n" + escape(run["fail_trace"].rstrip()))
    lines = run["captured_out"].rstrip().splitlines()[-output_lines:] if output_lines else []
    if lines:
        out.print(f"[bold]output[/] [dim](last {len(lines)} lines; --output-lines N)[/]")
        out.print(escape("\n".join(lines)))


def _print_epochs(out: Any, run: dict[str, Any]) -> None:
    series = run["series"]
    names = [n for n in ("loss", "accuracy", "val_loss", "val_accuracy") if n in series]
    if not names:
        return
    table = Table(title="per epoch", title_justify="left")
    table.add_column("epoch", justify="right")
    for n in names:
        table.add_column(n, justify="right")
    steps = sorted({s for n in names for s in series[n]["steps"]})
    by = {n: dict(zip(series[n]["steps"], series[n]["values"], strict=False)) for n in names}
    for s in steps:
        table.add_row(str(s), *(number(by[n].get(s)) for n in names))
    out.print(table)


@exp_app.command("compare")
def compare(
    ctx: typer.Context,
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids; deltas are against the first.")],
    show_all: Annotated[bool, typer.Option("--all", help="Show every param, not only those that differ.")] = False,
) -> None:
    """Runs side by side: the params that differ, metric deltas against the first run, and where
    they ran (commit, data version, DVC experiment)."""
    if not 2 <= len(run_ids) <= MAX_COMPARED:
        raise UsageError(
            f"give 2 to {MAX_COMPARED} run ids, got {len(run_ids)}", hint="python edge.py experiments compare 3 4"
        )
    app_ctx: AppContext = ctx.obj
    with open_service(app_ctx) as service:
        cmp, missing = service.compare(run_ids)
        describe = service.info.description
    if cmp is None:
        raise UsageError(
            f"no run with id {', '.join(missing)} in {describe}", hint="see 'python edge.py experiments list'"
        )
    heads = [f"run {i}" for i in cmp["ids"]]
    metrics = Table(title="metrics (delta against run " + cmp["ids"][0] + ")", title_justify="left")
    for col in ("", *heads):
        metrics.add_column(col, justify="right")
    for m in cmp["metrics"]:
        cells = []
        for i, (v, d) in enumerate(zip(m["values"], m["deltas"], strict=True)):
            text = duration(v) if m["key"] == "duration_s" else number(v)
            if i and d:
                shown = ("+" if d > 0 else "—") + duration(abs(d)) if m["key"] == "duration_s" else f"{d:+.4g}"
                good = (d > 0) == (m["better"] > 0)
                text += f" [{'green' if good else 'red'}]({shown})[/]" if m["better"] else f" ({shown})"
            cells.append(text)
        metrics.add_row(m["label"], *cells)
    app_ctx.console.print(metrics)
    for title, rows in (
        ("params" + ("" if show_all else " that differ"), cmp["params"]),
        ("where they ran", cmp["facts"]),
    ):
        shown = [r for r in rows if show_all or r["differs"]]
        if not shown:
            app_ctx.console.print(f"[dim]{title}: the same in every run[/]")
            continue
        table = Table(title=title, title_justify="left")
        for col in ("", *heads):
            table.add_column(col)
        for r in shown:
            style = "yellow" if r["differs"] else "default"
            table.add_row(
                escape(r.get("label") or r["key"]),
                *(f"[{style}]{escape(_fact(r['key'], v))}[/]" for v in r["values"]),
            )
        app_ctx.console.print(table)


def _fact(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if key == "start":
        return when(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return param(value)


@exp_app.command("ui")
def ui(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option(
            "--host", envvar="EDGE_UI_HOST", help="Interface to listen on (loopback by default; the page has no login)."
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", envvar="EDGE_UI_PORT", min=0, max=65535, help="Port (0: any free one).")
    ] = 9000,
) -> None:
    """Serve the experiments UI over the configured store, read-only: a sortable, filterable runs
    table, run pages (curves, confusion matrix, model, reproduce commands, output) and comparisons.
    Stop it with Ctrl-C."""
    # deferred: the UI imports FastAPI and uvicorn (about 0.5 s), which every other edge.py command would pay
    from vertex_edge.dashboard import server

    app_ctx: AppContext = ctx.obj
    port = server.resolve_port(host, port)
    with open_service(app_ctx) as service:
        app_ctx.console.print(f"experiments UI: [bold]{server.url_for(host, port)}[/]  (Ctrl-C to stop)")
        app_ctx.console.print(f"[dim]runs from the {escape(service.info.description)}; read-only[/]")
        if not server.is_loopback(host):
            app_ctx.console.print(
                f"[yellow]warning:[/] listening on {escape(host)}: anyone who reaches this address sees every run"
            )
        server.serve(service, host, port)


@exp_app.command("dashboard")
def dashboard(ctx: typer.Context) -> None:
    """Omniboard on the gcp target (a port-forward to the cluster); locally, the experiments UI."""
    app_ctx: AppContext = ctx.obj
    config = app_ctx.config()
    if config.target == "gcp":
        setup_gcp.dashboard(app_ctx, config)
        return
    app_ctx.console.print("the local target has no Omniboard: serving the experiments UI ('experiments ui') instead")
    raw = os.environ.get("EDGE_UI_PORT", "9000")
    if not raw.isdigit() or int(raw) > 65535:
        raise UsageError(f"EDGE_UI_PORT must be a port number (0-65535), got {raw!r}")
    ui(ctx, host=os.environ.get("EDGE_UI_HOST", "127.0.0.1"), port=int(raw))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items() if k not in ("captured_out", "_problems", "_evaluation")}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    return obj
