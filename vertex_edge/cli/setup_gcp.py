"""``edge.py setup --target gcp``, the gcp state store, and ``edge.py experiments dashboard`` on GKE.

Google clients are built here, at the edge (:func:`connect`; tests replace it with fakes), and
injected into :mod:`vertex_edge.provision.gcp`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from vertex_edge.cli.context import AppContext
from vertex_edge.cli.ui import StepSpinner, confirm, print_plan, save_config, spinner_callbacks
from vertex_edge.config import EdgeConfig, GcpConfig
from vertex_edge.errors import CloudError, UsageError
from vertex_edge.gcp.clients import GcpClients
from vertex_edge.gcp.names import GcpNames
from vertex_edge.gcp.object_store import state_store as gcs_state_store
from vertex_edge.gcp.sacred import omniboard_via_port_forward
from vertex_edge.provision.engine import Action, PlanItem, StepResult, apply_locked, plan
from vertex_edge.provision.gcp import BEFORE_LOCK, gcp_steps
from vertex_edge.provision.gcp.env import GcpEnv
from vertex_edge.provision.gcp.preflight import Precheck, Status, run_prechecks
from vertex_edge.state import StateStore

DASHBOARD_PORT_ENV = "EDGE_DASHBOARD_PORT"


def connect(config: EdgeConfig) -> GcpClients:
    """The real client bundle (:class:`CloudError` without Application Default Credentials)."""
    gcp = _gcp(config)
    return GcpClients.connect(gcp.project, gcp.region)


def _gcp(config: EdgeConfig) -> GcpConfig:
    if config.gcp is None:
        raise UsageError("edge.yaml has no 'gcp' section", hint="run 'python edge.py setup --target gcp --project P'")
    return config.gcp


def make_env(app_ctx: AppContext, config: EdgeConfig, spinner: StepSpinner | None = None) -> GcpEnv:
    """Names, clients (or the reason there are none) and the shared step state."""
    env = GcpEnv(names=GcpNames.from_config(config), clients=None, repo=app_ctx.repo)
    if spinner is not None:
        env.notify = spinner.update
    try:
        env.clients = connect(config)
    except CloudError as exc:
        env.gate.block(exc.message, exc.hint)
    return env


def print_prechecks(console: Console, checks: Sequence[Precheck]) -> None:
    style = {Status.OK: "green", Status.FAILED: "red", Status.WARNING: "yellow", Status.UNCHECKED: "magenta"}
    console.print("[bold]Pre-checks[/]")
    for c in checks:
        line = f"  [{style[c.status]}]{c.status.value:<13}[/] {escape(c.name)}"
        if c.detail:
            line += f"  [dim]{escape(c.detail)}[/]"
        console.print(line)
        if c.hint and c.status in (Status.FAILED, Status.WARNING):
            console.print(f"  {'':<13} [dim]hint: {escape(c.hint)}[/]")


def print_gate(console: Console, env: GcpEnv, checks: Sequence[Precheck]) -> None:
    """Why nothing was checked, said once (pointing at the pre-check that already said it)."""
    if not env.gate.reason:
        return
    source = next((c.name for c in checks if c.detail == env.gate.reason), None)
    if source:
        console.print(f"[magenta]not checked[/]: Google Cloud cannot be used (see '{escape(source)}' above)")
        return
    console.print(f"[magenta]not checked[/]: {escape(env.gate.reason)}")
    if env.gate.hint:
        console.print(f"  [dim]hint: {escape(env.gate.hint)}[/]")


def refuse_unless_ready(env: GcpEnv, checks: Sequence[Precheck], items: Sequence[PlanItem]) -> None:
    """:class:`CloudError` (nothing changed yet) when Google is unreachable, a pre-check failed
    or a resource could not be checked."""
    if env.gate.reason:
        raise CloudError(f"nothing was changed: {env.gate.reason}", hint=env.gate.hint)
    failed = [c for c in checks if c.status is Status.FAILED]
    if failed:
        raise CloudError(
            "pre-checks failed, nothing was changed:\n" + "\n".join(f"  - {c.name}: {c.detail}" for c in failed),
            hint=next((c.hint for c in failed if c.hint), None),
        )
    unknown = [i for i in items if i.check.action is Action.UNKNOWN]
    if unknown:
        raise CloudError(
            "cannot go on, nothing was changed:\n"
            + "\n".join(f"  - {i.step.title}: {i.check.why or i.check.detail}" for i in unknown)
        )


def run(app_ctx: AppContext, config: EdgeConfig, *, config_action: Action, yes: bool, dry_run: bool) -> None:
    """Pre-checks, the plan, confirmation, then every step in order under the state lock."""
    console = app_ctx.console
    spinner = StepSpinner(console)
    env = make_env(app_ctx, config, spinner)
    names = env.names
    current = "pre-checks"
    try:
        checks = run_prechecks(env, need_tools=names.sacred)
        items = plan(gcp_steps(env))
        print_prechecks(console, checks)
        title = f"Plan for target 'gcp' (project {names.project}, region {names.region})"
        print_plan(console, title, items, config_action, app_ctx.config_path, said=env.gate.reason)
        print_gate(console, env, checks)
        if dry_run:
            console.print("dry run: nothing was changed")
            return
        refuse_unless_ready(env, checks, items)
        changes = [i for i in items if i.check.action in (Action.CREATE, Action.UPDATE)]
        if changes:
            question = f"Create or update {len(changes)} resource(s) in project {names.project}? They are billed to it."
            confirm(app_ctx, question, yes=yes)
        save_config(app_ctx, config, config_action)
        on_start, on_done = spinner_callbacks(console, len(items), spinner, lambda item: item.step.title)

        def started(item: PlanItem) -> None:
            nonlocal current
            current = item.step.title
            on_start(item)

        before_lock = max(i for i, item in enumerate(items) if item.step.key in BEFORE_LOCK) + 1
        report = apply_locked(
            items, gcs_state_store(env.clients, names), before_lock=before_lock,
            command="edge.py setup --target gcp", on_start=started, on_done=on_done,
        )  # fmt: skip
        _summary(app_ctx, env, report.results, config_action)
    except KeyboardInterrupt:
        spinner.stop()
        console.print(
            f"\n[yellow]interrupted during {escape(current)}[/]: what Google already started goes on "
            "(a cluster keeps being created); run 'python edge.py setup --target gcp' again to resume"
        )
        raise
    finally:
        spinner.stop()
        env.close()


def _summary(app_ctx: AppContext, env: GcpEnv, results: Sequence[StepResult], config_action: Action) -> None:
    console, n = app_ctx.console, env.names
    changed = any(r.action in (Action.CREATE, Action.UPDATE) for r in results) or config_action is not Action.KEEP
    if changed:
        console.print(f"[green]gcp target ready[/] (state: {n.state_url})")
    else:
        console.print(f"[green]nothing to do[/]: every resource is already present (state: {n.state_url})")
    console.print(f"  DVC remote:   {n.dvc_url} (in .dvc/config: commit it so clones and CI use it)")
    console.print(f"  images:       {n.docker_registry}/<image>")
    if n.sacred:
        console.print("  experiments:  'python edge.py experiments dashboard' opens Omniboard through a port-forward")
    console.print("next: 'python edge.py data seed', 'dvc repro', 'dvc push'")


def state_store(app_ctx: AppContext, config: EdgeConfig) -> StateStore:
    """The gcp state (``gs://<bucket>/.edge/state.yaml``) and its lock, e.g. for ``force-unlock``."""
    return gcs_state_store(connect(config), GcpNames.from_config(config))


def dashboard(app_ctx: AppContext, config: EdgeConfig) -> None:
    """Port-forward to Omniboard in the cluster, print the local URL, hold it open until Ctrl-C."""
    names = GcpNames.from_config(config)
    if not names.sacred:
        app_ctx.console.print(
            "the gcp target has no Omniboard: tracking is off or tracking.mongodb_url points at your own MongoDB.\n"
            "Use 'python edge.py experiments list' and 'python edge.py experiments show ID'."
        )
        return
    raw = os.environ.get(DASHBOARD_PORT_ENV, "") or "0"
    if not raw.isdigit() or int(raw) > 65535:
        raise UsageError(f"{DASHBOARD_PORT_ENV} must be a port number (0-65535), got {raw!r}")
    clients = connect(config)
    with omniboard_via_port_forward(config, clients, local_port=int(raw)) as forward:
        app_ctx.console.print(f"Omniboard: {forward.url}")
        app_ctx.console.print(
            f"  [dim]port-forward to service {names.omniboard_service} in cluster {names.cluster} "
            f"(namespace {names.namespace}); Ctrl-C to close it[/]"
        )
        try:
            forward.wait()
        except KeyboardInterrupt:
            app_ctx.console.print("port-forward closed")
            return
    raise CloudError("the port-forward to Omniboard stopped", hint="run 'python edge.py experiments dashboard' again")
