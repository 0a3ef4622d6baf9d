"""``edge.py train``, ``edge.py pipeline use|show`` and ``edge.py images``.

``train`` runs the ``train`` stage's code outside ``dvc repro`` with the pipeline's own paths:
``--backend local`` (this machine, ``steps.train``), ``vertex`` (a Vertex AI CustomJob) or
``vertex-local`` (the Vertex job contract, run here). ``--backend vertex --dry-run`` prints the
CustomJob spec as JSON and touches nothing (no credentials needed).

``pipeline use local|vertex`` makes ``dvc.yaml`` a copy of ``dvc-step1.yaml`` (local) or
``dvc-step2.yaml`` (Vertex AI); ``pipeline show`` says which one is active.

``images`` prints the Artifact Registry URIs of the trainer, prediction and web-app images for a
commit (the Makefile's ``images-push`` and CI use it), or the web-app chart's values.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from vertex_edge.cli import setup_gcp
from vertex_edge.cli.context import AppContext
from vertex_edge.cli.ui import confirm
from vertex_edge.config import EdgeConfig, parse_config
from vertex_edge.errors import ConfigError, NotProvisionedError, UsageError
from vertex_edge.fsutil import atomic_write_bytes
from vertex_edge.gitinfo import git_info
from vertex_edge.monitoring.settings import MonitoringPaths
from vertex_edge.training.stage import TrainStage, run_train_stage
from vertex_edge.vertex.backend import cancel_policy, plan_job

PIPELINES = {"local": "dvc-step1.yaml", "vertex": "dvc-step2.yaml"}
ACTIVE_PIPELINE = "dvc.yaml"
IMAGES = {
    "trainer": "models/trainer/Dockerfile",
    "prediction": "services/prediction/Dockerfile",
    "webapp": "services/webapp/Dockerfile",
}

pipeline_app = typer.Typer(help="Which DVC pipeline dvc.yaml is: local (dvc-step1.yaml) or vertex (dvc-step2.yaml).",
                           no_args_is_help=True)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.add_typer(pipeline_app, name="pipeline")
    app.command("images")(images)


# --- edge.py train -----------------------------------------------------------------------


def train(
    ctx: typer.Context,
    backend: Annotated[
        str,
        typer.Option("--backend", envvar="EDGE_TRAIN_BACKEND", help="local, vertex (Vertex AI) or vertex-local."),
    ] = "local",
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print what would run (the CustomJob spec as JSON for vertex); change nothing."),
    ] = False,
    project: Annotated[
        Optional[str],
        typer.Option(
            "--project",
            envvar="EDGE_GCP_PROJECT",
            help="vertex --dry-run: the GCP project to plan for (default edge.yaml gcp.project).",
        ),
    ] = None,  # fmt: skip
    region: Annotated[
        Optional[str],
        typer.Option(
            "--region",
            envvar="EDGE_GCP_REGION",
            help="vertex --dry-run: the region (default edge.yaml, else us-central1).",
        ),
    ] = None,  # fmt: skip
    attach: Annotated[
        Optional[str],
        typer.Option("--attach", help="Wait for an existing job (vertex, vertex-local) instead of submitting."),
    ] = None,
    replicas: Annotated[
        Optional[int], typer.Option("--replicas", min=1, help="Replica count (default edge.yaml vertex.training).")
    ] = None,
    on_interrupt: Annotated[
        str,
        typer.Option(
            "--on-interrupt",
            envvar="EDGE_VERTEX_ON_INTERRUPT",
            help="Ctrl-C while a Vertex AI job runs: ask, cancel or keep.",
        ),
    ] = "ask",  # fmt: skip
    offline: Annotated[bool, typer.Option("--offline", help="Do not track the run (EDGE_OFFLINE=1).")] = False,
) -> None:
    """Train now with the pipeline's paths (data/prepared -> models/fashion-mnist, metrics/train.json,
    reports/train_history.csv; vertex_job.json for the Vertex backends), tracked in Sacred.

    Outside 'dvc repro' DVC does not record the outputs: 'dvc commit train' does (or use 'dvc repro').
    """
    app_ctx: AppContext = ctx.obj
    if on_interrupt not in ("ask", "cancel", "keep"):
        raise UsageError(f"--on-interrupt {on_interrupt!r}: expected ask, cancel or keep")
    if (project or region) and not (dry_run and backend == "vertex"):
        raise UsageError("--project and --region plan a Vertex AI job: use them with --backend vertex --dry-run")
    stage = TrainStage(
        repo=app_ctx.repo, config_path=app_ctx.config_path, offline=offline, backend=backend,  # type: ignore[arg-type]
        attach=attach, replicas=replicas, **TrainStage.vertex_env_defaults(os.environ),
    )  # fmt: skip
    if dry_run:
        _dry_run(app_ctx, stage, project, region)
        return
    app_ctx.config()  # a broken edge.yaml fails here, before any work
    run_train_stage(stage, echo=lambda line: typer.echo(line), confirm_cancel=cancel_policy(on_interrupt))
    app_ctx.console.print("[dim]outputs written outside 'dvc repro': 'dvc commit train' records them in dvc.lock[/]")


def _dry_run(app_ctx: AppContext, stage: TrainStage, project: str | None, region: str | None) -> None:
    if stage.backend == "local":
        app_ctx.console.print(
            f"would train here: {stage.data_dir} -> {stage.outputs.model_dir}, {stage.outputs.metrics}, "
            f"{stage.outputs.history} (python -m steps.train)"
        )
        app_ctx.console.print("dry run: nothing was changed")
        return
    config = stage.config()
    if project:
        gcp = (config.gcp.model_dump() if config.gcp else {}) | {"project": project}
        if region:
            gcp["region"] = region
        config = parse_config({**config.model_dump(mode="json", exclude_none=True), "gcp": gcp}, "--project/--region")
    spec, _ = plan_job(stage.vertex_options(config), files=None, upload=False)
    typer.echo(json.dumps(spec.to_json(), indent=2))


# --- edge.py pipeline --------------------------------------------------------------------


def active_pipeline(repo: Path) -> str | None:
    """``local`` or ``vertex`` when dvc.yaml equals that pipeline's file, ``custom`` when it equals
    neither, None when there is no dvc.yaml."""
    active = repo / ACTIVE_PIPELINE
    if not active.is_file():
        return None
    body = active.read_bytes()
    for name, file in PIPELINES.items():
        src = repo / file
        if src.is_file() and src.read_bytes() == body:
            return name
    return "custom"


@pipeline_app.command("use")
def pipeline_use(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="local (dvc-step1.yaml) or vertex (dvc-step2.yaml).")],
    yes: Annotated[
        bool, typer.Option("--yes", "-y", envvar="EDGE_YES", help="Overwrite a hand-edited dvc.yaml.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would change; change nothing.")] = False,
) -> None:
    """Make dvc.yaml a copy of the chosen pipeline (written atomically)."""

    app_ctx: AppContext = ctx.obj
    if name not in PIPELINES:
        raise UsageError(f"pipeline {name!r}: expected one of {', '.join(PIPELINES)}")
    repo = app_ctx.repo
    src = repo / PIPELINES[name]
    if not src.is_file():
        raise ConfigError(f"{src} not found: it defines the {name} pipeline")
    console = app_ctx.console
    current = active_pipeline(repo)
    if current == name:
        console.print(f"the {name} pipeline is already active (dvc.yaml = {src.name}): nothing to do")
        return
    if current == "custom":
        others = " nor ".join(PIPELINES.values())
        console.print(f"[yellow]dvc.yaml has edits that are in neither {others}: they would be lost[/]")
        if not dry_run:
            confirm(app_ctx, "Overwrite dvc.yaml?", yes=yes)
    if dry_run:
        console.print(f"would copy {src.name} to dvc.yaml (the {name} pipeline)")
        console.print("dry run: nothing was changed")
        return
    atomic_write_bytes(repo / ACTIVE_PIPELINE, src.read_bytes())
    console.print(f"dvc.yaml is now {src.name}: the [bold]{name}[/] pipeline is active")
    if name == "vertex":
        console.print(
            "  'dvc repro' trains on Vertex AI (edge.yaml needs the gcp target and the trainer image: "
            "'make images-push'); EDGE_TRAIN_BACKEND=vertex-local runs the same job here"
        )
    console.print("  the train stage's command changed: the next 'dvc repro' re-runs train and evaluate")


@pipeline_app.command("show")
def pipeline_show(ctx: typer.Context) -> None:
    """Say which pipeline dvc.yaml is."""
    app_ctx: AppContext = ctx.obj
    current = active_pipeline(app_ctx.repo)
    if current is None:
        raise ConfigError("there is no dvc.yaml", hint="run 'python edge.py pipeline use local' (or vertex)")
    if current == "custom":
        app_ctx.console.print(f"active pipeline: custom (dvc.yaml matches neither {' nor '.join(PIPELINES.values())})")
        return
    app_ctx.console.print(f"active pipeline: {current} (dvc.yaml = {PIPELINES[current]})")


# --- edge.py images ----------------------------------------------------------------------


def image_uris(config: EdgeConfig, tag: str) -> dict[str, str]:
    gcp = config.require_gcp("naming the images")
    registry = f"{gcp.region}-docker.pkg.dev/{gcp.project}/{gcp.artifact_repository}"
    return {name: f"{registry}/{name}:{tag}" for name in IMAGES}


def images(
    ctx: typer.Context,
    tag: Annotated[Optional[str], typer.Option("--tag", help="Image tag (default: the git commit).")] = None,
    only: Annotated[
        Optional[str], typer.Option("--only", help="Print one image: trainer, prediction or webapp.")
    ] = None,
    webapp_values: Annotated[
        bool, typer.Option("--webapp-values", help="Print the helm/webapp values (JSON) for the gcp target.")
    ] = False,
) -> None:
    """The Artifact Registry URIs of the trainer, prediction and web-app images (one per line)."""

    app_ctx: AppContext = ctx.obj
    config = app_ctx.config()
    tag = tag or git_info(app_ctx.repo).commit
    if not tag:
        raise UsageError("no --tag and no git commit to tag the images with")
    uris = image_uris(config, tag)
    if only is not None and only not in uris:
        raise UsageError(f"--only {only!r}: expected one of {', '.join(uris)}")
    if webapp_values:
        typer.echo(json.dumps(_webapp_values(app_ctx, config, uris["webapp"]), indent=2))
        return
    for name, uri in uris.items():
        if only is None or only == name:
            typer.echo(uri)


def _webapp_values(app_ctx: AppContext, config: EdgeConfig, image: str) -> dict[str, object]:
    """helm/webapp values for the Vertex AI endpoint recorded in the gcp state."""
    state, _ = setup_gcp.state_store(app_ctx, config).load()
    endpoint = state.resources.get("endpoint") if state else None
    if endpoint is None or not endpoint.location:
        raise NotProvisionedError(
            "the state records no Vertex AI endpoint", hint="run 'python edge.py setup --target gcp'"
        )
    return webapp_chart_values(config, app_ctx.repo, image, endpoint_id=endpoint.location.rsplit("/", 1)[-1])


def webapp_chart_values(config: EdgeConfig, repo: Path, image: str, *, endpoint_id: str) -> dict[str, object]:
    """The web-app image, its endpoint, and where "Was this right?" answers go (the bucket's feedback
    prefix that ``edge.py monitor`` reads; none when capture is off: nothing to join them to)."""
    gcp = config.require_gcp("writing the web app's values")
    repository, _, tag = image.rpartition(":")
    monitoring = config.monitoring
    return {
        "image": {"repository": repository, "tag": tag},
        "endpoint": {"backend": "vertex", "id": endpoint_id},
        "gcp": {"project": gcp.project, "region": gcp.region},
        "feedback": {
            "uri": MonitoringPaths.for_config(config, repo).feedback if monitoring.capture else "",
            "modelInputLogged": monitoring.request_response_logging and monitoring.sample_rate > 0,
        },
    }
