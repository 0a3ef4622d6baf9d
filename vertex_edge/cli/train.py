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

import contextlib
import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from vertex_edge.cli.context import AppContext
from vertex_edge.errors import ConfigError, UsageError

BACKENDS = ("local", "vertex", "vertex-local")
PIPELINES = {"local": "dvc-step1.yaml", "vertex": "dvc-step2.yaml"}
ACTIVE_PIPELINE = "dvc.yaml"
IMAGES = {
    "trainer": "models/trainer/Dockerfile",
    "prediction": "services/prediction/Dockerfile",
    "webapp": "services/webapp/Dockerfile",
}
# the train stage's paths, as in dvc-step1.yaml / dvc-step2.yaml (tests/unit/test_pipelines.py checks them)
STAGE_ARGS = [
    "--data-dir", "data/prepared", "--params", "params.yaml", "--model-dir", "models/fashion-mnist",
    "--metrics", "metrics/train.json", "--history", "reports/train_history.csv",
]  # fmt: skip
JOB_RECORD_ARGS = ["--job-record", "vertex_job.json"]

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
        bool, typer.Option("--dry-run", help="Print what would run (the CustomJob spec as JSON for vertex); change nothing.")
    ] = False,
    attach: Annotated[
        Optional[str], typer.Option("--attach", help="Wait for an existing job (vertex, vertex-local) instead of submitting.")
    ] = None,
    replicas: Annotated[
        Optional[int], typer.Option("--replicas", min=1, help="Replica count (default edge.yaml vertex.training).")
    ] = None,
    on_interrupt: Annotated[
        Optional[str],
        typer.Option("--on-interrupt", envvar="EDGE_VERTEX_ON_INTERRUPT",
                     help="Ctrl-C while a Vertex AI job runs: ask, cancel or keep."),
    ] = None,  # fmt: skip
    offline: Annotated[bool, typer.Option("--offline", help="Do not track the run (EDGE_OFFLINE=1).")] = False,
) -> None:
    """Train now with the pipeline's paths (data/prepared -> models/fashion-mnist, metrics/train.json,
    reports/train_history.csv; vertex_job.json for the Vertex backends), tracked in Sacred.

    Outside 'dvc repro' DVC does not record the outputs: 'dvc commit train' does (or use 'dvc repro').
    """
    app_ctx: AppContext = ctx.obj
    if backend not in BACKENDS:
        raise UsageError(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if backend == "local" and (attach or replicas):
        raise UsageError("--attach and --replicas apply to the vertex and vertex-local backends")
    if dry_run:
        _dry_run(app_ctx, backend, replicas)
        return
    argv = [*STAGE_ARGS, "--config", str(app_ctx.config_path)]
    if offline:
        argv.append("--offline")
    if backend == "local":
        from steps import train as stage
    else:
        from steps import train_vertex as stage  # type: ignore[no-redef]

        argv += [*JOB_RECORD_ARGS, "--backend", backend]
        if attach:
            argv += ["--attach", attach]
        if replicas:
            argv += ["--replicas", str(replicas)]
        if on_interrupt:
            argv += ["--on-interrupt", on_interrupt]
    app_ctx.config()  # a broken edge.yaml fails here, before any work
    with contextlib.chdir(app_ctx.repo):
        code = stage.main(argv)
    if code:
        raise typer.Exit(code)
    app_ctx.console.print("[dim]outputs written outside 'dvc repro': 'dvc commit train' records them in dvc.lock[/]")


def _dry_run(app_ctx: AppContext, backend: str, replicas: int | None) -> None:
    if backend == "local":
        app_ctx.console.print("would run: python -m steps.train " + " ".join(STAGE_ARGS))
        app_ctx.console.print("dry run: nothing was changed")
        return
    from vertex_edge.trainer import TrainOutputs
    from vertex_edge.vertex.stage import StageOptions, plan_job

    repo = app_ctx.repo
    opts = StageOptions(
        repo=repo,
        config=app_ctx.config(),
        data_dir=repo / "data" / "prepared",
        params_path=repo / "params.yaml",
        outputs=TrainOutputs(repo / "models" / "fashion-mnist", repo / "metrics" / "train.json",
                             repo / "reports" / "train_history.csv"),
        job_record=repo / "vertex_job.json",
        backend=backend,  # type: ignore[arg-type]
        replicas=replicas,
        data_source=os.environ.get("EDGE_VERTEX_DATA_SOURCE") or "staging",  # type: ignore[arg-type]
    )  # fmt: skip
    spec, _ = plan_job(opts, files=None, upload=False)
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
    yes: Annotated[bool, typer.Option("--yes", "-y", envvar="EDGE_YES", help="Overwrite a hand-edited dvc.yaml.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would change; change nothing.")] = False,
) -> None:
    """Make dvc.yaml a copy of the chosen pipeline (written atomically)."""
    from vertex_edge.cli.ui import confirm
    from vertex_edge.fsutil import atomic_write_bytes

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
        app_ctx.console.print(
            f"active pipeline: custom (dvc.yaml matches neither {' nor '.join(PIPELINES.values())})"
        )
        return
    app_ctx.console.print(f"active pipeline: {current} (dvc.yaml = {PIPELINES[current]})")


# --- edge.py images ----------------------------------------------------------------------


def image_uris(config: object, tag: str) -> dict[str, str]:
    from vertex_edge.vertex.job import require_gcp

    gcp = require_gcp(config)  # type: ignore[arg-type]
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
    from vertex_edge.gitinfo import git_info

    app_ctx: AppContext = ctx.obj
    config = app_ctx.config()
    tag = tag or git_info(app_ctx.repo)["commit"]
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


def _webapp_values(app_ctx: AppContext, config: object, image: str) -> dict[str, object]:
    """helm/webapp values: the web-app image and the Vertex AI endpoint recorded in the state."""
    from vertex_edge.cli import setup_gcp
    from vertex_edge.errors import NotProvisionedError

    gcp = config.gcp  # type: ignore[attr-defined]
    state, _ = setup_gcp.state_store(app_ctx, config).load()  # type: ignore[arg-type]
    endpoint = state.resources.get("endpoint") if state else None
    if endpoint is None or not endpoint.location:
        raise NotProvisionedError("the state records no Vertex AI endpoint", hint="run 'python edge.py setup --target gcp'")
    repository, _, tag = image.rpartition(":")
    return {
        "image": {"repository": repository, "tag": tag},
        "endpoint": {"backend": "vertex", "id": endpoint.location.rsplit("/", 1)[-1]},
        "gcp": {"project": gcp.project, "region": gcp.region},
    }
