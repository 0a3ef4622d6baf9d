"""``edge.py teardown``: delete what ``edge.py setup --target gcp`` created (reverse order)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from vertex_edge.cli.context import AppContext
from vertex_edge.cli.setup_gcp import StepSpinner, make_env
from vertex_edge.cli.ui import confirm
from vertex_edge.errors import CloudError, UsageError

if TYPE_CHECKING:
    from vertex_edge.gcp.teardown import Planned


def register(app: typer.Typer) -> None:
    app.command("teardown")(teardown)


def teardown(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", envvar="EDGE_YES", help="Do not ask for confirmation.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be deleted or kept; change nothing.")
    ] = False,
    delete_data: Annotated[
        bool,
        typer.Option(
            "--delete-data",
            help="Also delete the data: the bucket (DVC store, state), the MongoDB volume (Sacred runs) "
            "and the MongoDB password.",
        ),
    ] = False,
) -> None:
    """Delete the gcp target's resources in reverse order: endpoint (its deployed models first),
    GKE cluster, Artifact Registry repository; with --delete-data also the bucket, the MongoDB
    volume and password. Says what keeps costing money if kept."""
    from vertex_edge.gcp.teardown import StateRecorder, Verdict, plan_teardown, run_teardown, teardown_items

    app_ctx: AppContext = ctx.obj
    config = app_ctx.config()
    if config.target != "gcp":
        raise UsageError(
            "teardown removes the gcp target's cloud resources; this edge.yaml uses the local target",
            hint=f"the local target keeps everything under {config.storage_root(app_ctx.repo)}: delete that folder",
        )
    console = app_ctx.console
    spinner = StepSpinner(console)
    env = make_env(app_ctx, config, spinner)
    names = env.names
    try:
        if env.clients is not None and not env.gate.reason:
            from vertex_edge.gcp.preflight import check_credentials

            check_credentials(env)  # one fast call decides whether Google can be reached at all
        planned = plan_teardown(teardown_items(env, delete_data=delete_data))
        title = f"Teardown for project {names.project} (region {names.region})"
        _print_plan(console, title, planned, env.gate.reason, env.gate.hint)
        _print_costs(console, planned)
        if dry_run:
            console.print("dry run: nothing was changed")
            return
        if env.gate.reason:
            raise CloudError(f"nothing was changed: {env.gate.reason}", hint=env.gate.hint)
        acting = [p for p in planned if p.finding.verdict is Verdict.DELETE]
        securing = [p for p in planned if p.finding.verdict is Verdict.KEEP and p.item.acts_when_kept]
        if not acting and not securing:
            console.print("nothing to delete")
            return
        confirm(
            app_ctx,
            f"Delete {len(acting)} resource(s) in project {names.project}? This cannot be undone.",
            yes=yes,
        )
        recorder = StateRecorder(env)
        bucket = next((p for p in planned if p.item.key == "bucket"), None)
        has_bucket = bucket is not None and bucket.finding.verdict is not Verdict.ABSENT
        total = len(acting) + len(securing)
        counter = {"n": 0}

        def on_start(entry: Planned) -> None:
            counter["n"] += 1
            spinner.start(entry.item.title)

        def on_done(entry: Planned, seconds: float) -> None:
            spinner.stop()
            verb = "deleted" if entry.finding.verdict is Verdict.DELETE else "kept"
            console.print(
                f"[{counter['n']}/{total}] {escape(entry.item.title):<32} "
                f"[{'red' if verb == 'deleted' else 'yellow'}]{verb}[/]  [dim]{escape(entry.finding.detail)} "
                f"({seconds:.1f}s)[/]"
            )

        if has_bucket:
            with recorder.store.lock("edge.py teardown"):
                recorder.load()
                run_teardown(planned, recorder, on_start=on_start, on_done=on_done)
        else:
            run_teardown(planned, recorder, on_start=on_start, on_done=on_done)
        skipped = [p for p in planned if p.finding.verdict is Verdict.UNKNOWN]
        for p in skipped:
            console.print(f"[magenta]not checked, left alone[/]: {escape(p.item.title)}: {escape(p.finding.detail)}")
        console.print("[green]teardown done[/]" + (" (re-run it to retry what was not checked)" if skipped else ""))
        if any(p.finding.cost and p.finding.verdict is Verdict.KEEP for p in planned):
            console.print("[dim]kept resources are listed above with what they cost[/]")
    except KeyboardInterrupt:
        spinner.stop()
        console.print("\n[yellow]interrupted[/]: run 'python edge.py teardown' again to finish")
        raise
    finally:
        spinner.stop()
        env.close()


_STYLE = {"will delete": "red", "keep": "yellow", "absent": "dim", "not checked": "magenta"}


def _print_plan(
    console: Console, title: str, planned: Sequence[Planned], reason: str | None, hint: str | None
) -> None:
    console.print(f"[bold]{escape(title)}[/]")
    for p in planned:
        verdict = p.finding.verdict.value
        detail = "" if reason and p.finding.detail == reason else p.finding.detail
        console.print(f"  [{_STYLE[verdict]}]{verdict:<13}[/] {escape(p.item.title)}  [dim]{escape(detail)}[/]")
    console.print("  [dim]APIs stay enabled (enabling costs nothing by itself)[/]")
    if reason:
        console.print(f"[magenta]not checked[/]: {escape(reason)}")
        if hint:
            console.print(f"  [dim]hint: {escape(hint)}[/]")


def _print_costs(console: Console, planned: Sequence[Planned]) -> None:
    costs = [p.finding.cost for p in planned if p.finding.cost and p.finding.verdict.value == "keep"]
    if costs:
        console.print("[bold]Kept, and still billed:[/]")
        for cost in costs:
            console.print(f"  - {escape(cost)}")
