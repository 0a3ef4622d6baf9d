"""The Vertex AI training backend: plan the CustomJob, run it on Vertex AI (or ``vertex-local``,
the same job contract on this machine), and hand back the model folder the job wrote.

:func:`plan_job` builds the CustomJob spec (and stages the prepared data where the job can read
it). :class:`VertexBackend` is a :class:`~vertex_edge.training.run.TrainingBackend`: the ONE
tracked run (:func:`vertex_edge.training.run.run_training`) records it in Sacred exactly like a
local training. The model is exported once, inside the job; here its folder is downloaded and
every file is verified against the sha256 in its card (never exported again), and
``vertex_job.json`` records the job (name, spec, output URI, links).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from vertex_edge.artifact import ModelArtifact
from vertex_edge.config import EdgeConfig
from vertex_edge.data.prepare import PreparedMeta, load_meta
from vertex_edge.dvc_env import workspace_root
from vertex_edge.errors import DataError, UsageError
from vertex_edge.fsutil import atomic_write_json, file_digest
from vertex_edge.gcp.clients import GcpClients
from vertex_edge.gcp.files import Files, is_gcs, join, split_gcs
from vertex_edge.gitinfo import git_info
from vertex_edge.layout import LocalLayout
from vertex_edge.params import TrainParams, load_params
from vertex_edge.tracking.target import MONGO_ENV
from vertex_edge.training.run import EpochSink, Trained
from vertex_edge.vertex.job import (
    DATA_FILES,
    STAGING_PREFIX,
    JobSpec,
    TrainerInputs,
    build_job_spec,
    display_name,
    job_output_uri,
    trainer_image,
)
from vertex_edge.vertex.local_jobs import LocalJobs
from vertex_edge.vertex.submit import Echo, JobBackend, JobOutcome, VertexJobs, artifact_registry_check, run_job

log = logging.getLogger(__name__)

BACKENDS = ("vertex", "vertex-local")
DATA_SOURCES = ("staging", "dvc")
PENDING_DIGEST = "<md5 of data/prepared, computed when submitting>"


@dataclass
class VertexOptions:
    """What one Vertex training needs to know besides the params (``edge.py train`` and the
    ``train`` stage of dvc-step2.yaml build it from their flags)."""

    repo: Path
    config: EdgeConfig
    data_dir: Path
    params_path: Path
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
        """Under the storage root of the workspace (a queued experiment runs in a temporary clone
        that DVC deletes afterwards: its job folder must outlive it)."""
        return LocalLayout.from_config(self.config, workspace_root(self.repo, os.environ)).vertex_local_jobs


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
    opts: VertexOptions, *, files: Files | None, upload: bool, now: datetime | None = None
) -> tuple[JobSpec, TrainerInputs]:
    """The job for the current params, data and commit. With ``upload`` the prepared data is
    staged; without it (``--dry-run``) nothing is read from or written to the cloud."""
    config = opts.config
    loaded = load_params(opts.params_path)  # the train stage requires every key; a dry run does not
    params = loaded.train
    git = git_info(opts.repo)
    meta = _meta_or_none(opts.data_dir)
    name = display_name(config.model.name, git.commit, now)
    data_files: dict[str, str] = {}
    if opts.backend == "vertex":
        gcp = config.require_gcp()
        bucket_uri = f"gs://{gcp.bucket_name}"
        image = trainer_image(config, git.commit)
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
        data_version=meta.data_version if meta else "unknown", ood_fpr=loaded.monitor.ood.fpr,
        git_commit=git.commit, git_dirty=git.dirty, data_files=data_files,
    )  # fmt: skip
    spec = build_job_spec(
        config, inputs, output_uri=output_uri, name=name, image=image, project=project, location=location,
        staging_bucket=bucket_uri, replica_count=opts.replicas, backend=opts.backend,
    )  # fmt: skip
    return spec, inputs


def _meta_or_none(data_dir: Path) -> PreparedMeta | None:
    try:
        return load_meta(data_dir)
    except DataError:
        return None


# --- the backend --------------------------------------------------------------------------


@dataclass
class VertexBackend:
    """Runs the job (or attaches to one), then hands its verified model folder to the tracked run."""

    opts: VertexOptions
    jobs: JobBackend
    files: Files
    echo: Echo
    confirm_cancel: Callable[[str], bool]

    @property
    def kind(self) -> str:
        return self.jobs.kind

    def start_info(self) -> dict[str, Any]:
        return {"vertex_job": {"backend": self.jobs.kind, "name": self.opts.attach or ""}}

    def train(
        self, *, params: TrainParams, meta: PreparedMeta, folder: Path, on_epoch: EpochSink, run_id: str | None
    ) -> Trained:
        spec = None
        if not self.opts.attach:
            spec, inputs = plan_job(self.opts, files=self.files, upload=True)
            if inputs.git_dirty and self.opts.backend == "vertex" and not self.opts.config.vertex.training.image:
                self.echo(
                    f"warning: the working tree has uncommitted changes; the job runs the trainer image of commit "
                    f"{(inputs.git_commit or '')[:8]}, without them"
                )
        with tempfile.TemporaryDirectory(prefix="edge-vertex-") as tmp:
            outcome = run_job(
                self.jobs, spec, files=self.files, download_to=Path(tmp), echo=self.echo,
                confirm_cancel=self.confirm_cancel, attach=self.opts.attach, poll_s=self.opts.poll_s,
            )  # fmt: skip
            artifact = adopt_job_model(outcome.local_dir / "model", folder, job=job_info(outcome))
        history = [dict(r) for r in outcome.summary.get("history") or []]
        for row in history:  # a vertex-local job printed its epochs here already
            on_epoch(int(row["epoch"]), row, None, show=outcome.backend != "vertex-local")
        atomic_write_json(self.opts.job_record, job_record(outcome, artifact, run_id))
        self.echo(f"job record: {self.opts.job_record}")
        return Trained(artifact, history, info={"vertex_job": job_info(outcome)})


def adopt_job_model(downloaded: Path, folder: Path, *, job: dict[str, Any]) -> ModelArtifact:
    """Move the job's model folder into ``folder``, verify every file against its card's sha256
    (the export happened once, in the job), and record the job in the card."""
    for path in downloaded.iterdir():
        shutil.move(str(path), folder / path.name)
    artifact = ModelArtifact.read(folder, source=f"the job's model folder ({job.get('output_uri')})")
    artifact.verify()
    card = artifact.card.with_updates(training={**artifact.card.training, "vertex_job": job})
    return artifact.write_card(card)


def job_info(outcome: JobOutcome) -> dict[str, Any]:
    """The job, in a few fields (Sacred's ``vertex_job`` info and the model card)."""
    return {
        "backend": outcome.backend,
        "name": outcome.name,
        "display_name": outcome.spec.display_name,
        "state": outcome.status.state,
        "output_uri": outcome.output_uri,
    }


def job_record(outcome: JobOutcome, artifact: ModelArtifact, run_id: str | None) -> dict[str, Any]:
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
        "model_version": artifact.version,
        "model_sha256": artifact.card.onnx_sha256,
        "test_accuracy": artifact.test_accuracy,
        "sacred_run_id": run_id,
        "spec": outcome.spec.to_json(),
    }


def make_vertex_backend(opts: VertexOptions, *, echo: Echo, confirm_cancel: Callable[[str], bool]) -> VertexBackend:
    """The Vertex backend with real clients (Vertex AI on Application Default Credentials), or the
    ``vertex-local`` one (the trainer as a subprocess here), built at the edge."""
    if opts.backend == "vertex-local":
        # the trainer gets Vertex AI's contract, not this process's secrets (a MongoDB URL with its password)
        env = {k: v for k, v in os.environ.items() if k != MONGO_ENV}
        jobs: JobBackend = LocalJobs(jobs_root=opts.local_jobs_root(), cwd=opts.repo, env=env)
        return VertexBackend(opts, jobs, Files(), echo, confirm_cancel)
    from google.cloud import aiplatform  # deferred: the SDK takes seconds to import

    gcp = opts.config.require_gcp()
    clients = GcpClients.connect(gcp.project, gcp.region)
    jobs = VertexJobs(
        aiplatform, project=gcp.project, location=gcp.region, credentials=clients.credentials,
        image_check=artifact_registry_check(clients.artifact_registry),
    )  # fmt: skip
    return VertexBackend(opts, jobs, Files(clients.storage), echo, confirm_cancel)


def cancel_policy(policy: str) -> Callable[[str], bool]:
    """What Ctrl-C during a job does: ``cancel``, ``keep``, or ``ask`` (on a terminal; cancel off one)."""

    def ask(name: str) -> bool:
        if policy in ("cancel", "keep"):
            return policy == "cancel"
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            return True  # nobody to ask (CI stopped): do not leave a paid job running
        answer = input(f"\nCancel the training job {name}? [y/N] ")
        return answer.strip().lower() in ("y", "yes")

    return ask
