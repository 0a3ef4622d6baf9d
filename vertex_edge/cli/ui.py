"""Terminal output for the CLI: plans, one progress line per step, confirmations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from vertex_edge.cli.context import AppContext
from vertex_edge.errors import UsageError
from vertex_edge.provision.engine import Action, PlanItem, StepResult

_STYLE = {Action.KEEP: "dim", Action.CREATE: "green", Action.UPDATE: "yellow", Action.UNKNOWN: "magenta"}


def print_plan(
    console: Console,
    title: str,
    items: Sequence[PlanItem],
    config_action: Action | None = None,
    config_path: Path | None = None,
) -> None:
    console.print(f"[bold]{escape(title)}[/]")
    if config_action is not None and config_path is not None:
        console.print(
            f"  [{_STYLE[config_action]}]{config_action.describe():<13}[/] edge.yaml  {escape(str(config_path))}"
        )
    for item in items:
        action = item.check.action
        console.print(
            f"  [{_STYLE[action]}]{action.describe():<13}[/] {escape(item.step.title)}  [dim]{escape(item.check.detail)}[/]"
        )


def progress_callbacks(console: Console, total: int) -> tuple[Callable[[PlanItem], None], Callable[[StepResult], None]]:
    counter = {"n": 0}

    def on_start(item: PlanItem) -> None:
        counter["n"] += 1

    def on_done(result: StepResult) -> None:
        verb = {
            Action.KEEP: "already present",
            Action.CREATE: "created",
            Action.UPDATE: "updated",
            Action.UNKNOWN: "not checked",
        }[result.action]
        where = result.resource.location if result.resource else result.detail
        console.print(
            f"[{counter['n']}/{total}] {escape(result.step.title):<32} [{_STYLE[result.action]}]{verb}[/]"
            f"  [dim]{escape(where)} ({result.seconds:.1f}s)[/]"
        )

    return on_start, on_done


def confirm(app_ctx: AppContext, question: str, *, yes: bool) -> None:
    """Ask on a terminal; off a terminal, refuse unless --yes was given."""
    if yes:
        return
    if not app_ctx.interactive:
        raise UsageError(f"{question} needs confirmation: pass --yes (or set EDGE_YES=1) when not on a terminal")
    if not typer.confirm(question, default=False):
        raise typer.Abort()
