"""``edge.py teardown``: delete what ``edge.py setup --target gcp`` created (reverse order)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from vertex_edge.cli.context import AppContext
from vertex_edge.cli.setup_gcp import make_env
from vertex_edge.cli.ui import StepSpinner, confirm, plan_line
from vertex_edge.errors import CloudError, UsageError
from vertex_edge.provision.gcp import teardown_items
from vertex_edge.provision.gcp.env import GcpEnv
from vertex_edge.provision.gcp.preflight import check_credentials
from vertex_edge.provision.gcp.resource import Verdict
from vertex_edge.provision.gcp.state import StateRecorder
from vertex_edge.provision.gcp.teardown import Planned, plan_teardown, run_teardown

_STYLE = {Verdict.DELETE: "red", Verdict.KEEP: "yellow", Verdict.ABSENT: "dim", Verdict.UNKNOWN: "magenta"}


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
            check_credentials(env)  # one fast call decides whether Google can be reached at all
        planned = plan_teardown(teardown_items(env, delete_data=delete_data))
        _print_plan(console, f"Teardown for project {names.project} (region {names.region})", planned, env)
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
        _carry_out(console, env, spinner, planned, total=len(acting) + len(securing))
        _print_outcome(console, planned)
    except KeyboardInterrupt:
        spinner.stop()
        console.print("\n[yellow]interrupted[/]: run 'python edge.py teardown' again to finish")
        raise
    finally:
        spinner.stop()
        env.close()


def _carry_out(console: Console, env: GcpEnv, spinner: StepSpinner, planned: list[Planned], *, total: int) -> None:
    """Run the plan, one progress line per deletion; under the state lock while the bucket (which holds it) exists."""
    recorder = StateRecorder(env)
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

    bucket = next((p for p in planned if p.item.key == "bucket"), None)
    if bucket is not None and bucket.finding.verdict is not Verdict.ABSENT:
        with recorder.store.lock("edge.py teardown"):
            recorder.load()
            run_teardown(planned, recorder, on_start=on_start, on_done=on_done)
    else:
        run_teardown(planned, recorder, on_start=on_start, on_done=on_done)


def _print_outcome(console: Console, planned: Sequence[Planned]) -> None:
    skipped = [p for p in planned if p.finding.verdict is Verdict.UNKNOWN]
    for p in skipped:
        why = p.finding.why or p.finding.detail
        console.print(f"[magenta]not checked, left alone[/]: {escape(p.item.title)}: {escape(why)}")
    console.print("[green]teardown done[/]" + (" (re-run it to retry what was not checked)" if skipped else ""))
    if any(p.finding.cost and p.finding.verdict is Verdict.KEEP for p in planned):
        console.print("[dim]kept resources are listed above with what they cost[/]")


def _print_plan(console: Console, title: str, planned: Sequence[Planned], env: GcpEnv) -> None:
    reason, hint = env.gate.reason, env.gate.hint
    console.print(f"[bold]{escape(title)}[/]")
    for p in planned:
        verdict = p.finding.verdict
        why = "" if p.finding.why == reason else p.finding.why
        plan_line(console, verdict.value, _STYLE[verdict], p.item.title, p.finding.detail, why)
    console.print("  [dim]APIs stay enabled (enabling costs nothing by itself)[/]")
    if reason:
        console.print(f"[magenta]not checked[/]: {escape(reason)}")
        if hint:
            console.print(f"  [dim]hint: {escape(hint)}[/]")


def _print_costs(console: Console, planned: Sequence[Planned]) -> None:
    costs = [p.finding.cost for p in planned if p.finding.cost and p.finding.verdict is Verdict.KEEP]
    if costs:
        console.print("[bold]Kept, and still billed:[/]")
        for cost in costs:
            console.print(f"  - {escape(cost)}")
