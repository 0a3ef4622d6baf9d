"""``python deploy-vertex.py``: register the model ``dvc repro`` produced and deploy it.

Reads ``edge.yaml`` and picks the deployer by its ``target``. The model is judged by the figures
that belong to it (``reports/evaluation.json`` naming its sha256, else its card) against the
COMMITTED quality gate and the version taking traffic (:mod:`vertex_edge.deploy.candidate`).
Exit codes as for ``edge.py``: 0 done, 1 refused by the quality gate or the champion check, a
failed reload on the running server (or another failure), 2 bad flags/config, 3 lock held.
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
    DEFAULT_EVALUATION,
    DEFAULT_MODEL_DIR,
    DEFAULT_PARAMS,
    DeployResult,
    gate_policy,
    load_candidate,
)
from vertex_edge.deploy.wiring import get_deployer
from vertex_edge.errors import QualityGateError, UsageError
from vertex_edge.serving_status import DEFAULT_WAIT_S

app = new_app("deploy-vertex.py")


@app.command()
def deploy(
    repo: RepoOption = None,
    config: ConfigOption = None,
    model_dir: Annotated[
        Path, typer.Option("--model-dir", help="The trained model folder (model.onnx, model.keras, model_card.json).")
    ] = DEFAULT_MODEL_DIR,
    evaluation: Annotated[
        Path, typer.Option("--evaluation", help="The evaluate stage's record (must name this model's sha256).")
    ] = DEFAULT_EVALUATION,
    params: Annotated[
        Path,
        typer.Option("--params", help="DVC params file: evaluate.min_accuracy and deploy.max_regression, as committed."),
    ] = DEFAULT_PARAMS,
    min_accuracy: Annotated[
        Optional[float],
        typer.Option("--min-accuracy", help="A stricter quality gate than the committed evaluate.min_accuracy."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Deploy although the gate or the champion check refuses (recorded with who and the figures)."),
    ] = False,
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
    wait: Annotated[
        float,
        typer.Option("--wait", envvar="EDGE_DEPLOY_WAIT_S", min=0,
                     help="local target: seconds to wait for a running 'edge.py serve' to serve the new version (0: look once)."),
    ] = DEFAULT_WAIT_S,  # fmt: skip
    yes: Annotated[bool, typer.Option("--yes", "-y", envvar="EDGE_YES", help="Do not ask for confirmation.")] = False,
    verbose: VerboseOption = False,
) -> None:
    """Register the trained model as a new version in the target's model registry, then send the
    endpoint's traffic to it. Refused (unless --force, which is recorded) below the committed
    quality gate (params.yaml evaluate.min_accuracy at HEAD) or more than deploy.max_regression
    below the version taking traffic; --dry-run shows both judgements and changes nothing.

    With target 'local' (edge.yaml) the registry and endpoint live under the storage root and
    'python edge.py serve' serves the deployed version; a running server picks up a new
    deployment by itself, and deploy waits (--wait) until it reports serving it. --rollback
    returns to the previous version. A corrupt version never takes traffic.
    """
    configure_logging(verbose)
    app_ctx = AppContext.create(repo, config)
    if rollback and version is not None:
        raise UsageError("--rollback and --version cannot be combined: pick one")
    if rollback and (force or min_accuracy is not None):
        raise UsageError("--force and --min-accuracy apply to a new model or --version, not to --rollback")
    if version is not None and min_accuracy is not None:
        raise UsageError("--min-accuracy applies to a new model, not to --version")
    deployer = get_deployer(app_ctx.config(), app_ctx.repo)
    # traffic (gcp: canary share), wait (local: for the running server), confirmation, progress
    deployer.configure(
        traffic=traffic, wait_s=wait, confirm=lambda q: confirm(app_ctx, q, yes=yes), echo=app_ctx.console.print
    )
    if rollback:
        result = deployer.rollback(dry_run=dry_run)
    elif version is not None:
        result = deployer.deploy_version(version, dry_run=dry_run, force=force)
    else:
        policy, notes = gate_policy(app_ctx.repo, _in_repo(app_ctx.repo, params), min_accuracy=min_accuracy)
        candidate = load_candidate(
            _in_repo(app_ctx.repo, model_dir), evaluation_path=_in_repo(app_ctx.repo, evaluation), policy=policy
        )
        candidate.notes[:0] = notes
        try:
            result = deployer.deploy(candidate, force=force, dry_run=dry_run)
        except QualityGateError:
            for note in candidate.notes:  # e.g. an experiment's lowered gate in the working tree
                app_ctx.err.print(f"[yellow]note:[/] {escape(note)}")
            raise
    _print_result(app_ctx, deployer.target, result)
    if result.error is not None:
        raise result.error


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
        console.print("dry run: nothing was changed" + ("; deploying would be refused:" if result.error else ""))
        return
    if result.how_to_call and result.error is None:
        console.print("\n[bold]call it:[/]")
        for line in result.how_to_call:
            console.print(f"  {escape(line)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``deploy-vertex.py``; return the exit code (errors printed without a traceback)."""
    return run_command(typer.main.get_command(app), argv, prog_name="deploy-vertex.py")
