"""The ``train`` stage of the Vertex pipeline (``dvc-step2.yaml``): plan the job, run it on Vertex
AI (or ``vertex-local``), record it in Sacred like the local stage, write the same outputs.

:func:`plan_job` builds the CustomJob spec (and stages the prepared data where the job can read
it); :func:`run_stage` runs it inside a Sacred experiment with the same config, info fields and
metrics as :func:`vertex_edge.trainer.run_tracked_training`, plus ``vertex_job``. The outputs are
written by :func:`vertex_edge.trainer.write_outputs` from the model the job trained, so
``models/fashion-mnist``, ``metrics/train.json`` and ``reports/train_history.csv`` have exactly
the local stage's form; ``vertex_job.json`` records the job (name, spec, output URI).
"""

from __future__ import annotations

import hashlib
import logging
import platform
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from vertex_edge.config import EdgeConfig
from vertex_edge.errors import DataError, UsageError
from vertex_edge.fsutil import atomic_write_json, file_digest
from vertex_edge.tracking import TrackingTarget
from vertex_edge.trainer import TrainOutputs
from vertex_edge.vertex.job import (
    DATA_FILES,
    STAGING_PREFIX,
    JobSpec,
    TrainerInputs,
    build_job_spec,
    display_name,
    job_output_uri,
    require_gcp,
    trainer_image,
)
from vertex_edge.vertex.submit import Echo, JobBackend, JobOutcome, run_job
from vertex_edge.vertex.uris import Files, is_gcs, join, split_gcs

log = logging.getLogger(__name__)

BACKENDS = ("vertex", "vertex-local")
DATA_SOURCES = ("staging", "dvc")
LOCAL_JOBS = "vertex-local/jobs"  # under the storage root
PENDING_DIGEST = "<md5 of data/prepared, computed when submitting>"


@dataclass
class StageOptions:
    repo: Path
    config: EdgeConfig
    data_dir: Path
    params_path: Path
    outputs: TrainOutputs
    job_record: Path
    backend: Literal["vertex", "vertex-local"] = "vertex"
    data_source: Literal["staging", "dvc"] = "staging"
    attach: str | None = None
    replicas: int | None = None
    local_output: str | None = None  # vertex-local: base folder (or gs:// on an emulator) for job outputs
    poll_s: float = 30.0

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise UsageError(f"backend {self.backend!r}: expected one of {', '.join(BACKENDS)}")
        if self.data_source not in DATA_SOURCES:
            raise UsageError(f"data source {self.data_source!r}: expected one of {', '.join(DATA_SOURCES)}")
        if self.replicas is not None and self.replicas < 1:
            raise UsageError(f"--replicas {self.replicas}: expected at least 1")

    def local_jobs_root(self) -> Path:
        from vertex_edge.layout import LocalLayout

        return LocalLayout.from_config(self.config, self.repo).root / LOCAL_JOBS


# --- the prepared data where the job can read it ----------------------------------------


def data_digest(data_dir: Path) -> str | None:
    """One id for the prepared files (md5 over their md5s); None when they are not there."""
    paths = [data_dir / name for name in DATA_FILES]
    if not all(p.is_file() for p in paths):
        return None
    h = hashlib.md5()  # noqa: S324 - identity, not security
    for p in paths:
        h.update(f"{p.name}:{file_digest(p)}\n".encode())
    return h.hexdigest()


def stage_data(files: Files, data_dir: Path, bucket_uri: str) -> str:
    """Upload the prepared files once to ``<bucket>/vertex/staging/prepared/<digest>/`` (content-
    addressed: an unchanged dataset is not uploaded again); return that prefix."""
    digest = data_digest(data_dir)
    if digest is None:
        missing = [n for n in DATA_FILES if not (data_dir / n).is_file()]
        raise DataError(f"{data_dir} lacks {', '.join(missing)}", hint="run the prepare stage first ('dvc repro prepare')")
    prefix = join(bucket_uri, STAGING_PREFIX, digest)
    for name in DATA_FILES:
        uri = join(prefix, name)
        if not files.exists(uri):
            files.upload(data_dir / name, uri)
    return prefix


def dvc_data_files(repo: Path, data_dir: Path, files: Files | None) -> dict[str, str]:
    """The DVC remote's URL of each prepared file (``dvc.api.get_url``); they must be on GCS and
    pushed (``dvc push``) for the job to read them."""
    import dvc.api

    try:
        rel = data_dir.resolve().relative_to(repo.resolve())
    except ValueError:
        raise UsageError(f"--data-source dvc needs the data folder inside the repository, got {data_dir}") from None
    urls = {}
    for name in DATA_FILES:
        try:
            url = str(dvc.api.get_url(str(rel / name), repo=str(repo)))
        except Exception as exc:  # noqa: BLE001 - dvc raises many types; all mean "not tracked/resolvable"
            raise DataError(f"DVC cannot locate {rel / name} in its remote ({exc})") from None
        if not is_gcs(url):
            raise UsageError(
                f"the DVC remote holds {rel / name} at {url}, which Vertex AI cannot read",
                hint="use the gcp target's gs:// remote, or --data-source staging",
            )
        if files is not None and not files.exists(url):
            raise DataError(f"{url} ({rel / name}) is not in the DVC remote yet", hint="run 'dvc push' first")
        urls[name] = url
    return urls


# --- the plan --------------------------------------------------------------------------


def plan_job(
    opts: StageOptions, *, files: Files | None, upload: bool, now: datetime | None = None
) -> tuple[JobSpec, TrainerInputs]:
    """The job for the current params, data and commit. With ``upload`` the prepared data is
    staged; without it (``--dry-run``) nothing is read from or written to the cloud."""
    from vertex_edge.gitinfo import git_info
    from vertex_edge.params import load_params

    config = opts.config
    params = load_params(opts.params_path).train
    git = git_info(opts.repo)
    meta = _meta_or_none(opts.data_dir)
    name = display_name(config.model.name, git["commit"], now)
    data_files: dict[str, str] = {}
    if opts.backend == "vertex":
        gcp = require_gcp(config)
        bucket_uri = f"gs://{gcp.bucket_name}"
        image = trainer_image(config, git["commit"])
        output_uri = job_output_uri(gcp.bucket_name, name)
        project, location = gcp.project, gcp.region
        data_uri = ""
        if opts.data_source == "dvc":
            data_files = dvc_data_files(opts.repo, opts.data_dir, files if upload else None)
        elif upload:
            assert files is not None
            data_uri = stage_data(files, opts.data_dir, bucket_uri)
        else:
            data_uri = join(bucket_uri, STAGING_PREFIX, data_digest(opts.data_dir) or PENDING_DIGEST)
    else:
        base = opts.local_output or str(opts.local_jobs_root())
        output_uri = join(base, name)
        project = config.gcp.project if config.gcp else "local"
        location = config.gcp.region if config.gcp else "local"
        bucket_uri = f"gs://{split_gcs(base)[0]}" if is_gcs(base) else ""
        image = config.vertex.training.image or "(this machine's python)"
        if bucket_uri and upload:
            assert files is not None
            data_uri = stage_data(files, opts.data_dir, bucket_uri)
        else:
            data_uri = str(opts.data_dir.resolve())
    inputs = TrainerInputs(
        params=params, model_name=config.model.name, data_uri=data_uri,
        data_version=str((meta or {}).get("data_version") or "unknown"),
        git_commit=git["commit"], git_dirty=bool(git["dirty"]), data_files=data_files,
    )  # fmt: skip
    spec = build_job_spec(
        config, inputs, output_uri=output_uri, name=name, image=image, project=project, location=location,
        staging_bucket=bucket_uri, replica_count=opts.replicas, backend=opts.backend,
    )  # fmt: skip
    return spec, inputs


def _meta_or_none(data_dir: Path) -> dict[str, Any] | None:
    from vertex_edge.trainer import load_meta

    try:
        return load_meta(data_dir)
    except DataError:
        return None


# --- the tracked run ---------------------------------------------------------------------


def run_stage(
    opts: StageOptions,
    *,
    backend: JobBackend,
    files: Files,
    tracking: TrackingTarget,
    echo: Echo,
    confirm_cancel: Callable[[str], bool],
    mongo_client: Any = None,
) -> dict[str, Any]:
    """Run the job as a Sacred experiment and write the local stage's outputs; return the card."""
    from vertex_edge.data.prepare import load_npz
    from vertex_edge.gitinfo import git_info
    from vertex_edge.params import load_params
    from vertex_edge.trainer import load_meta, new_experiment, run_experiment

    params = load_params(opts.params_path).train
    meta = load_meta(opts.data_dir)
    test_split = load_npz(opts.data_dir / "test.npz")
    spec = None
    if not opts.attach:
        spec, inputs = plan_job(opts, files=files, upload=True)
        if inputs.git_dirty and opts.backend == "vertex" and not opts.config.vertex.training.image:
            echo(
                f"warning: the working tree has uncommitted changes; the job runs the trainer image of commit "
                f"{(inputs.git_commit or '')[:8]}, without them"
            )
    ex = new_experiment(opts.config.model.name, params, tracking, mongo_client=mongo_client, echo=echo)
    local_git = git_info(opts.repo)
    card_box: dict[str, Any] = {}

    @ex.main
    def _run_main(_run: Any) -> float:
        run_id = None if _run._id is None else str(_run._id)
        job_name = opts.attach or (spec.display_name if spec else "")
        _run.info.update(
            {
                "data_version": meta["data_version"],
                "git": local_git,
                "host": platform.node(),
                "vertex_job": {"backend": backend.kind, "name": job_name},
            }
        )
        with tempfile.TemporaryDirectory(prefix="edge-vertex-") as tmp:
            outcome = run_job(
                backend, spec, files=files, download_to=Path(tmp), echo=echo, confirm_cancel=confirm_cancel,
                attach=opts.attach, poll_s=opts.poll_s,
            )  # fmt: skip
            _run.info["vertex_job"] = job_info(outcome)
            card = _write_from_job(outcome, opts, meta, params, run_id, test_split.images[:256], echo, _run)
        record = job_record(outcome, card, run_id)
        atomic_write_json(opts.job_record, record)
        echo(f"job record: {opts.job_record}")
        card_box.update(card)
        return float(card["metrics"]["test_accuracy"])

    run_experiment(ex, tracking, echo)
    return card_box


def _write_from_job(
    outcome: JobOutcome,
    opts: StageOptions,
    meta: dict[str, Any],
    params: Any,
    run_id: str | None,
    sample: Any,
    echo: Echo,
    sacred_run: Any,
) -> dict[str, Any]:
    """Log the job's epochs to Sacred, then write the outputs from the model it trained."""
    import json

    import keras

    from vertex_edge.trainer import write_outputs
    from vertex_edge.training import TrainResult

    summary = outcome.summary
    history = [dict(r) for r in summary.get("history") or []]
    for row in history:
        epoch = int(row["epoch"])
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            if key in row:
                sacred_run.log_scalar(key, row[key], epoch)
        if outcome.backend != "vertex-local":  # a local job already printed its epochs here
            shown = "  ".join(f"{k} {row[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in row)
            echo(f"epoch {epoch}/{params.epochs}  {shown}")
    try:
        remote_card = json.loads((outcome.local_dir / "model" / "model_card.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        remote_card = {}
    model = keras.models.load_model(outcome.local_dir / "model" / "model.keras")
    model(sample[:1].astype("float32"))  # a loaded model must be called once before an ONNX export
    result = TrainResult(
        model=model,
        history=history,
        test_loss=float(summary["test_loss"]),
        test_accuracy=float(summary["test_accuracy"]),
        epochs_run=int(summary.get("epochs_run", len(history))),
        best_epoch=int(summary.get("best_epoch", len(history))),
        seconds=float(summary.get("train_seconds", 0.0)),
        train_count=int(summary.get("train_images", 0)),
        val_count=int(summary.get("val_images", 0)),
    )
    echo(
        f"test accuracy {result.test_accuracy:.4f}, loss {result.test_loss:.4f} "
        f"({result.epochs_run} epochs, best {result.best_epoch}, {result.seconds:.0f}s on {outcome.backend})"
    )
    trained_meta = {**meta, "data_version": remote_card.get("data_version") or meta["data_version"]}
    git = remote_card.get("git") or sacred_run.info.get("git")
    card = write_outputs(
        result, opts.outputs, meta=trained_meta, params=params, model_name=opts.config.model.name, git=git,
        run_id=run_id, sample=sample,
        extra_card={"vertex_job": job_info(outcome), "training": remote_card.get("training") or {}},
    )  # fmt: skip
    sacred_run.info["test_metrics"] = {"accuracy": result.test_accuracy, "loss": result.test_loss}
    sacred_run.info["model"] = {
        "path": str(opts.outputs.model_dir / "model.onnx"),
        "sha256": card["artifacts"]["model.onnx"]["sha256"],
        "version": card["version"],
        "epochs_run": result.epochs_run,
    }
    sacred_run.log_scalar("test_accuracy", result.test_accuracy)
    return card


def job_info(outcome: JobOutcome) -> dict[str, Any]:
    """The job, in a few fields (Sacred's ``vertex_job`` info and the model card)."""
    return {
        "backend": outcome.backend,
        "name": outcome.name,
        "display_name": outcome.spec.display_name,
        "state": outcome.status.state,
        "output_uri": outcome.output_uri,
    }


def job_record(outcome: JobOutcome, card: dict[str, Any], run_id: str | None) -> dict[str, Any]:
    """``vertex_job.json``: the job's resource name, spec, output URI, links and result."""
    summary = outcome.summary
    return {
        **job_info(outcome),
        "project": outcome.spec.project,
        "location": outcome.spec.location,
        "model_uri": summary.get("model_dir"),
        "links": outcome.links,
        "submitted": outcome.submitted,
        "finished": outcome.finished,
        "wall_seconds": round(outcome.seconds, 1),
        "trainer": {
            k: summary.get(k)
            for k in ("replicas", "strategy", "gpus", "resumed_from_epoch", "train_seconds", "epochs_run")
        },
        "model_version": card["version"],
        "test_accuracy": card["metrics"]["test_accuracy"],
        "sacred_run_id": run_id,
        "spec": outcome.spec.to_json(),
    }
