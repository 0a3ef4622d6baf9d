"""``edge.py setup`` and ``edge.py force-unlock``."""

from __future__ import annotations

import os
from typing import Annotated, Optional
from urllib.parse import urlsplit

import typer

from vertex_edge.cli import setup_gcp
from vertex_edge.cli.context import AppContext
from vertex_edge.cli.ui import confirm, print_plan, progress_callbacks, save_config
from vertex_edge.config import EdgeConfig, parse_config
from vertex_edge.errors import UsageError
from vertex_edge.layout import LocalLayout
from vertex_edge.provision.engine import Action, apply_locked, plan
from vertex_edge.provision.local import local_steps
from vertex_edge.registry import LocalRegistry
from vertex_edge.state import StateStore

TARGETS = ("local", "gcp")


def register(app: typer.Typer) -> None:
    app.command("setup")(setup)
    app.command("force-unlock")(force_unlock)


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def setup(
    ctx: typer.Context,
    target: Annotated[
        Optional[str],
        typer.Option("--target", envvar="EDGE_TARGET", help="Where to provision: 'local' (this machine) or 'gcp'."),
    ] = None,
    model_name: Annotated[
        Optional[str],
        typer.Option("--model-name", envvar="EDGE_MODEL_NAME", help="Model name (default fashion-mnist)."),
    ] = None,
    storage_root: Annotated[
        Optional[str],
        typer.Option(
            "--storage-root",
            envvar="EDGE_STORAGE_ROOT",
            help="Local storage root for the DVC store, experiments, registry and state (default .edge, git-ignored).",
        ),
    ] = None,
    mongodb_url: Annotated[
        Optional[str],
        typer.Option(
            "--mongodb-url",
            help="MongoDB URL for Sacred, without a password ('none' for the file store). "
            "A URL with a password goes in the EDGE_MONGODB_URL environment variable, never on the command line.",
        ),
    ] = None,
    project: Annotated[
        Optional[str], typer.Option("--project", envvar="EDGE_GCP_PROJECT", help="GCP project id (gcp target).")
    ] = None,
    region: Annotated[
        Optional[str], typer.Option("--region", envvar="EDGE_GCP_REGION", help="GCP region (gcp target).")
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", envvar="EDGE_YES", help="No questions: use flags, env and defaults.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan (each resource: create/keep); change nothing.")
    ] = False,
) -> None:
    """Create or check edge.yaml, then provision the target idempotently.

    With no edge.yaml, asks a few questions on a terminal (target, model name, storage
    location, MongoDB URL); off a terminal or with --yes it uses flags, environment variables
    (EDGE_TARGET, EDGE_MODEL_NAME, EDGE_STORAGE_ROOT, EDGE_MONGODB_URL, EDGE_GCP_PROJECT,
    EDGE_GCP_REGION) and local defaults. Running it again reports every resource as already
    present and changes nothing.
    """
    app_ctx: AppContext = ctx.obj
    if mongodb_url is not None and mongodb_url.lower() not in ("none", "") and urlsplit(mongodb_url).password:
        raise UsageError(
            "--mongodb-url must not carry a password (command lines are visible to other users and logged)",
            hint="export EDGE_MONGODB_URL='mongodb://user:password@host:27017' and run setup without --mongodb-url",
        )
    env_mongo = _env("EDGE_MONGODB_URL")
    if mongodb_url is None and env_mongo is not None:
        # a URL with credentials stays in the environment; edge.yaml gets nothing
        mongodb_url = None if urlsplit(env_mongo).password else env_mongo

    answers = {
        "target": target,
        "model_name": model_name,
        "storage_root": storage_root,
        "mongodb_url": mongodb_url,
        "project": project,
        "region": region,
    }
    existed = app_ctx.config_path.exists()
    if existed:
        base = app_ctx.config()
        config = _apply_overrides(base, answers)
    elif app_ctx.interactive and not yes:
        config = _wizard(app_ctx, answers)
    else:
        config = _apply_overrides(EdgeConfig(), answers)

    config_action = Action.CREATE if not existed else (Action.KEEP if config == app_ctx.config() else Action.UPDATE)
    app_ctx.set_config(config)

    if config.target == "gcp":
        setup_gcp.run(app_ctx, config, config_action=config_action, yes=yes, dry_run=dry_run)
        return
    _setup_local(app_ctx, config, config_action, dry_run=dry_run)


def _apply_overrides(base: EdgeConfig, answers: dict[str, Optional[str]]) -> EdgeConfig:
    data = base.to_yaml_dict()
    target = answers.get("target")
    if target is not None:
        if target not in TARGETS:
            raise UsageError(f"--target must be one of {', '.join(TARGETS)}, got {target!r}")
        data["target"] = target
    if answers.get("model_name") is not None:
        data.setdefault("model", {})["name"] = answers["model_name"]
    if answers.get("storage_root") is not None:
        data.setdefault("storage", {})["root"] = answers["storage_root"]
    url = answers.get("mongodb_url")
    if url is not None:
        tracking = data.setdefault("tracking", {})
        if url.lower() in ("none", ""):
            tracking.pop("mongodb_url", None)
        else:
            tracking["mongodb_url"] = url
    if answers.get("project") is not None or answers.get("region") is not None:
        gcp = data.setdefault("gcp", {})
        if answers.get("project") is not None:
            gcp["project"] = answers["project"]
        if answers.get("region") is not None:
            gcp["region"] = answers["region"]
    return parse_config(data, "edge.yaml (with command-line options)")


def _wizard(app_ctx: AppContext, answers: dict[str, Optional[str]]) -> EdgeConfig:
    """A short wizard; every answer defaults to its flag or environment variable."""
    console = app_ctx.console
    console.print("[bold]vertex-edge setup[/] - no edge.yaml yet; a few questions (Enter keeps the default).")
    target = typer.prompt("Target (local or gcp)", default=answers["target"] or "local")
    model_name = typer.prompt("Model name", default=answers["model_name"] or "fashion-mnist")
    data: dict[str, Optional[str]] = dict(answers, target=target, model_name=model_name)
    if target == "gcp":
        data["project"] = typer.prompt("GCP project id", default=answers["project"] or "")
        data["region"] = typer.prompt("GCP region", default=answers["region"] or "us-central1")
    else:
        data["storage_root"] = typer.prompt("Storage root", default=answers["storage_root"] or ".edge")
    url = typer.prompt(
        "MongoDB URL for experiment tracking ('none' keeps runs in local files)",
        default=answers["mongodb_url"] or "none",
    )
    if url.lower() != "none" and urlsplit(url).password:
        console.print(
            "[yellow]That URL has a password: it will not be written to edge.yaml. "
            "Export it as EDGE_MONGODB_URL before training.[/]"
        )
        url = "none"
    data["mongodb_url"] = url
    return _apply_overrides(EdgeConfig(), data)


def _setup_local(app_ctx: AppContext, config: EdgeConfig, config_action: Action, *, dry_run: bool) -> None:
    console = app_ctx.console
    items = plan(local_steps(config, app_ctx.repo))
    if dry_run:
        print_plan(console, f"Plan for target 'local' ({app_ctx.repo})", items, config_action, app_ctx.config_path)
        console.print("dry run: nothing was changed")
        return

    save_config(app_ctx, config, config_action)
    store = LocalLayout.from_config(config, app_ctx.repo).state_store()
    on_start, on_done = progress_callbacks(console, len(items))
    # the storage root holds the lock, so it is the one step made before the lock is taken
    report = apply_locked(
        items, store, before_lock=1, command="edge.py setup --target local", on_start=on_start, on_done=on_done
    )
    if report.changed or config_action is not Action.KEEP:
        console.print(f"[green]local target ready[/] (state: {store.location})")
    else:
        console.print(f"[green]nothing to do[/]: every resource is already present (state: {store.location})")
    console.print("next: 'python edge.py data seed', then 'dvc repro'")


def force_unlock(
    ctx: typer.Context,
    registry: Annotated[
        bool, typer.Option("--registry", help="The local model registry's lock (deploy-vertex.py) instead of the state's.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", envvar="EDGE_YES", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a lock left by an edge.py or deploy-vertex.py that died. Use only when no other one runs.
    (A lock taken on this host by a process that is gone is cleared by itself.)"""
    app_ctx: AppContext = ctx.obj
    config = app_ctx.config()
    store = _registry_lock(app_ctx, config) if registry else _state_store(app_ctx, config)
    holder = store.holder()
    if holder is None:
        app_ctx.console.print(f"no lock at {store.lock_location}: nothing to do")
        return
    app_ctx.console.print(f"lock at {store.lock_location} held by {holder.describe()}")
    confirm(app_ctx, "Remove this lock?", yes=yes)
    store.force_unlock()
    app_ctx.console.print("lock removed")


def _state_store(app_ctx: AppContext, config: EdgeConfig) -> StateStore:
    if config.target == "gcp":
        return setup_gcp.state_store(app_ctx, config)
    return LocalLayout.from_config(config, app_ctx.repo).state_store()


def _registry_lock(app_ctx: AppContext, config: EdgeConfig) -> StateStore:
    if config.target != "local":
        raise UsageError(
            f"--registry: edge.yaml target is {config.target!r}; only the local target has a registry lock",
            hint="on the gcp target the model registry is Vertex AI's",
        )
    layout = LocalLayout.from_config(config, app_ctx.repo)
    return LocalRegistry(layout.registry, config.model.name).lock_store
