"""Terminal output for the CLI: plans, one progress line per step, a spinner while a step
runs, confirmations, and the edge.yaml line every setup prints."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from vertex_edge.cli.context import AppContext
from vertex_edge.config import EdgeConfig, write_config
from vertex_edge.errors import UsageError
from vertex_edge.provision.engine import Action, PlanItem, StepResult

_STYLE = {Action.KEEP: "dim", Action.CREATE: "green", Action.UPDATE: "yellow", Action.UNKNOWN: "magenta"}


def plan_line(console: Console, label: str, style: str, title: str, detail: str, why: str = "") -> None:
    """One line of a plan (setup's or teardown's): what happens, to what, its full name; and on
    a second line why it could not be checked, unless that was said once already (``why`` "")."""
    console.print(f"  [{style}]{label:<13}[/] {escape(title)}  [dim]{escape(detail)}[/]")
    if why:
        console.print(f"  {'':<13} [dim]not checked: {escape(why)}[/]")


def print_plan(
    console: Console,
    title: str,
    items: Sequence[PlanItem],
    config_action: Action | None = None,
    config_path: Path | None = None,
    *,
    said: str | None = None,
) -> None:
    """The plan, one line per step; ``said``: a reason given once elsewhere, not repeated per step."""
    console.print(f"[bold]{escape(title)}[/]")
    if config_action is not None and config_path is not None:
        plan_line(console, config_action.describe(), _STYLE[config_action], "edge.yaml", str(config_path))
    for item in items:
        check = item.check
        why = "" if check.why == said else check.why
        plan_line(console, check.action.describe(), _STYLE[check.action], item.step.title, check.detail, why)


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


class StepSpinner:
    """A spinner with elapsed time while a step runs (on a terminal); off a terminal, a line
    at most every ``interval`` seconds while a long wait goes on."""

    def __init__(self, console: Console, *, interval: float = 60.0) -> None:
        self.console = console
        self.interval = interval
        self._progress: Any = None
        self._task: Any = None
        self._title = ""
        self._started = 0.0
        self._last = 0.0

    def start(self, title: str) -> None:
        self.stop()
        self._title, self._started, self._last = title, time.monotonic(), time.monotonic()
        if self.console.is_terminal:
            # deferred: rich.progress is only needed on a terminal, while a step runs
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                console=self.console, transient=True,
            )  # fmt: skip
            self._progress.start()
            self._task = self._progress.add_task(escape(title), total=None)

    def update(self, message: str) -> None:
        text = f"{self._title}: {message}"
        if self._progress is not None:
            self._progress.update(self._task, description=escape(text))
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self.console.print(f"  [dim]... {escape(text)} ({(now - self._started) / 60:.0f} min)[/]")

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def spinner_callbacks(
    console: Console, total: int, spinner: StepSpinner, title_of: Callable[[Any], str]
) -> tuple[Callable[[Any], None], Callable[[Any], None]]:
    on_start, on_done = progress_callbacks(console, total)

    def start(item: Any) -> None:
        on_start(item)
        spinner.start(title_of(item))

    def done(result: Any) -> None:
        spinner.stop()
        on_done(result)

    return start, done


def confirm(app_ctx: AppContext, question: str, *, yes: bool) -> None:
    """Ask on a terminal; off a terminal, refuse unless --yes was given."""
    if yes:
        return
    if not app_ctx.interactive:
        raise UsageError(f"{question} needs confirmation: pass --yes (or set EDGE_YES=1) when not on a terminal")
    if not typer.confirm(question, default=False):
        raise typer.Abort()


def save_config(app_ctx: AppContext, config: EdgeConfig, action: Action) -> None:
    """Write edge.yaml when it is new or changed (``action``), and say which."""
    if action is not Action.KEEP:
        write_config(config, app_ctx.config_path)
    verb = {Action.CREATE: "created", Action.UPDATE: "updated", Action.KEEP: "already present"}[action]
    app_ctx.console.print(f"edge.yaml  {verb}")
