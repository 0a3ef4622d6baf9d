"""``python deploy-vertex.py``: register the model ``dvc repro`` produced and deploy it.

Reads ``edge.yaml`` and picks the deployer by its ``target``. Exit codes as for ``edge.py``:
0 done, 1 refused by the quality gate (or another failure), 2 bad flags/config, 3 lock held.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from vertex_edge.cli.app import ConfigOption, RepoOption, VerboseOption, configure_logging, new_app, run_command
from vertex_edge.cli.context import AppContext
from vertex_edge.cli.ui import confirm
from vertex_edge.deploy.candidate import (
    DEFAULT_METRICS,
    DEFAULT_MODEL_DIR,
    DEFAULT_PARAMS,
    DeployResult,
    load_candidate,
)
from vertex_edge.deploy.wiring import get_deployer
from vertex_edge.errors import UsageError

app = new_app("deploy-vertex.py")


@app.command()
def deploy(
    repo: RepoOption = None,
    config: ConfigOption = None,
    model_dir: Annotated[
        Path, typer.Option("--model-dir", help="The trained model folder (model.onnx, model.keras, model_card.json).")
    ] = DEFAULT_MODEL_DIR,
    metrics: Annotated[
        Path, typer.Option("--metrics", help="Test metrics written by the evaluate stage.")
    ] = DEFAULT_METRICS,
    params: Annotated[
        Path, typer.Option("--params", help="DVC params file holding evaluate.min_accuracy.")
    ] = DEFAULT_PARAMS,
    min_accuracy: Annotated[
        Optional[float],
        typer.Option("--min-accuracy", help="Quality gate override (default: params.yaml evaluate.min_accuracy)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Deploy even when test accuracy is below the gate.")] = False,
    rollback: Annotated[
        bool, typer.Option("--rollback", help="Return the endpoint to the version deployed before the current one.")
    ] = False,
    version: Annotated[
        Optional[str],
        typer.Option("--version", help="Deploy this already registered version instead of the trained model."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be done; change nothing.")] = False,
    traffic: Annotated[
        Optional[int],
        typer.Option("--traffic", min=1, max=100, help="gcp target: the new version's share of the traffic (canary)."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", envvar="EDGE_YES", help="Do not ask for confirmation.")] = False,
    verbose: VerboseOption = False,
) -> None:
    """Register the trained model as a new version in the target's model registry (refused
    below the quality gate unless --force), then send the endpoint's traffic to it.

    With target 'local' (edge.yaml) the registry and endpoint live under the storage root and
    'python edge.py serve' serves the deployed version; a running server picks up a new
    deployment by itself. --rollback returns to the previous version; --dry-run changes nothing.
    """
    configure_logging(verbose)
    app_ctx = AppContext.create(repo, config)
    if rollback and version is not None:
        raise UsageError("--rollback and --version cannot be combined: pick one")
    if rollback and (force or min_accuracy is not None):
        raise UsageError("--force and --min-accuracy apply to a new model, not to --rollback")
    deployer = get_deployer(app_ctx.config(), app_ctx.repo)
    configure = getattr(deployer, "configure", None)  # the gcp target: canary share, confirmation, progress
    if callable(configure):
        configure(traffic=traffic, confirm=lambda q: confirm(app_ctx, q, yes=yes), echo=app_ctx.console.print)
    elif traffic is not None:
        raise UsageError(f"--traffic applies to the gcp target; target '{deployer.target}' sends all traffic")
    if rollback:
        result = deployer.rollback(dry_run=dry_run)
    elif version is not None:
        result = deployer.deploy_version(version, dry_run=dry_run)
    else:
        candidate = load_candidate(
            _in_repo(app_ctx.repo, model_dir),
            metrics_path=_in_repo(app_ctx.repo, metrics),
            params_path=_in_repo(app_ctx.repo, params),
            min_accuracy=min_accuracy,
        )
        result = deployer.deploy(candidate, force=force, dry_run=dry_run)
    _print_result(app_ctx, deployer.target, result)


def _in_repo(repo: Path, path: Path) -> Path:
    return path if path.is_absolute() else repo / path


def _print_result(app_ctx: AppContext, target: str, result: DeployResult) -> None:
    console = app_ctx.console
    if result.dry_run:
        console.print(f"[bold]Plan for target '{target}'[/] (dry run)")
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    for action in result.actions:
        console.print(f"  {escape(action)}" if result.dry_run else escape(action))
    if result.dry_run:
        console.print("dry run: nothing was changed")
        return
    if result.how_to_call:
        console.print("\n[bold]call it:[/]")
        for line in result.how_to_call:
            console.print(f"  {escape(line)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``deploy-vertex.py``; return the exit code (errors printed without a traceback)."""
    return run_command(typer.main.get_command(app), argv, prog_name="deploy-vertex.py")
