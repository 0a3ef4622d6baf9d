"""``edge.py experiments``: list and show Sacred runs from whichever store is configured."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

import typer

from vertex_edge.cli import setup_gcp
from vertex_edge.cli.context import AppContext
from vertex_edge.errors import UsageError
from vertex_edge.gcp.sacred import tracking_environment
from vertex_edge.layout import LocalLayout
from vertex_edge.tracking.runs import FileExperimentStore, MongoExperimentStore, summarize
from vertex_edge.tracking.target import connect_mongo, resolve_tracking

exp_app = typer.Typer(help="Experiment tracking (Sacred runs).", no_args_is_help=True)


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


@exp_app.command("list")
def list_runs(
    ctx: typer.Context,
    last: Annotated[int, typer.Option("--last", "-n", min=0, help="Show only the last N runs (0: all).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """A table of runs: id, status, start, git commit, data version, key params, test accuracy."""
    from rich.table import Table

    app_ctx: AppContext = ctx.obj
    with open_store(app_ctx) as (target, store):
        rows = [summarize(r) for r in store.list_runs()]
    if last:
        rows = rows[-last:]
    if as_json:
        app_ctx.console.print_json(json.dumps(rows))
        return
    if not rows:
        app_ctx.console.print(f"no runs yet in {target.describe()}; run 'dvc repro' to train")
        return
    table = Table(title=f"experiments ({target.describe()})")
    for col in ("id", "status", "start", "commit", "data", "params", "test acc"):
        table.add_column(col)
    for r in rows:
        acc = r["test_accuracy"]
        table.add_row(
            r["id"],
            r["status"],
            r["start"],
            r["commit"],
            r["data"],
            r["params"],
            f"{acc:.4f}" if isinstance(acc, (int, float)) else "-",
        )
    app_ctx.console.print(table)


@exp_app.command("show")
def show(
    ctx: typer.Context, run_id: Annotated[str, typer.Argument(help="The run id (see 'experiments list').")]
) -> None:
    """One run in full: config, git, data version, per-epoch metrics, test metrics, artifacts."""
    app_ctx: AppContext = ctx.obj
    with open_store(app_ctx) as (target, store):
        run = store.get_run(run_id)
    if run is None:
        raise UsageError(
            f"no run with id {run_id!r} in {target.describe()}", hint="see 'python edge.py experiments list'"
        )
    app_ctx.console.print_json(json.dumps(_jsonable(run), default=str))


@exp_app.command("dashboard")
def dashboard(ctx: typer.Context) -> None:
    """Open Omniboard (gcp target: a port-forward to the cluster); locally, point at 'experiments list'."""
    app_ctx: AppContext = ctx.obj
    config = app_ctx.config()
    if config.target == "gcp":
        setup_gcp.dashboard(app_ctx, config)
        return
    target = tracking_target(app_ctx, os.environ)
    app_ctx.console.print(
        f"the local target has no Omniboard: runs are in the {target.describe()}.\n"
        "Use 'python edge.py experiments list' and 'python edge.py experiments show ID'."
    )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items() if k not in ("captured_out",)}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    return obj
