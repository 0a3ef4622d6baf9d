"""The Vertex AI CustomJob spec for the ``train`` stage, from ``edge.yaml`` and ``params.yaml``.

:func:`build_job_spec` returns a plain :class:`JobSpec` (JSON-able: ``edge.py train --backend
vertex --dry-run`` prints it, ``vertex_job.json`` records it). :func:`to_custom_job` turns it into
the SDK's ``aiplatform.CustomJob`` without any network call, so tests can assert its proto fields.

The worker pool spec: ``edge.yaml`` ``vertex.training`` gives the machine type, the accelerator
type and count (``NVIDIA_TESLA_T4`` x1 by default) and the replica count (one chief pool, plus a
worker pool when there are several replicas: TensorFlow's MultiWorkerMirroredStrategy). The image
is ``<region>-docker.pkg.dev/<project>/<artifact_repository>/trainer:<git commit>`` unless
``vertex.training.image`` names one. The container runs the one trainer entrypoint
(:mod:`vertex_edge.vertex.task`) with the train params as arguments; the job's
``base_output_directory`` lies under the bucket, so Vertex AI sets the ``AIP_*`` folders.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vertex_edge.config import EdgeConfig
from vertex_edge.errors import ConfigError, UsageError
from vertex_edge.gcp.files import join
from vertex_edge.gcp.labels import gcp_label
from vertex_edge.params import TrainParams

TASK_MODULE = "vertex_edge.vertex.task"
TRAINER_IMAGE = "trainer"
JOBS_PREFIX = "vertex/jobs"
STAGING_PREFIX = "vertex/staging/prepared"
DATA_FILES = ("train.npz", "test.npz", "meta.json")
REPORT_DIR = "report"
BOOT_DISK = {"boot_disk_type": "pd-ssd", "boot_disk_size_gb": 100}
CONTAINER_ENV = {"PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}



def trainer_image(config: EdgeConfig, commit: str | None) -> str:
    """``vertex.training.image``, else the image ``make images-push`` builds for ``commit``."""
    if config.vertex.training.image:
        return config.vertex.training.image
    gcp = config.require_gcp()
    if not commit:
        raise UsageError(
            "cannot name the training image: this is not a git checkout with a commit",
            hint="commit, build and push the image ('make images-push'), or set vertex.training.image in edge.yaml",
        )
    return f"{gcp.region}-docker.pkg.dev/{gcp.project}/{gcp.artifact_repository}/{TRAINER_IMAGE}:{commit}"


def display_name(model_name: str, commit: str | None, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{model_name}-train-{(commit or 'nogit')[:8]}-{now.strftime('%Y%m%d-%H%M%S')}"


def job_output_uri(bucket: str, name: str) -> str:
    return f"gs://{bucket}/{JOBS_PREFIX}/{name}"


@dataclass(frozen=True)
class TrainerInputs:
    """What the trainer is told on its command line."""

    params: TrainParams
    model_name: str
    data_uri: str  # a folder holding train.npz, test.npz, meta.json
    data_version: str
    ood_fpr: float  # params.yaml monitor.ood.fpr: the export calibrates the model's OOD flag to it
    git_commit: str | None = None
    git_dirty: bool = False
    data_files: Mapping[str, str] = field(default_factory=dict)  # per-file URIs (the DVC remote)

    def args(self, report_dir: str) -> list[str]:
        args = [
            "--data-uri", self.data_uri,
            "--params-json", json.dumps(self.params.model_dump(mode="json"), sort_keys=True, separators=(",", ":")),
            "--model-name", self.model_name,
            "--data-version", self.data_version,
            "--ood-fpr", repr(self.ood_fpr),
            "--report-dir", report_dir,
        ]  # fmt: skip
        for name in sorted(self.data_files):
            args += ["--data-file", f"{name}={self.data_files[name]}"]
        if self.git_commit:
            args += ["--git-commit", self.git_commit]
        if self.git_dirty:
            args.append("--git-dirty")
        return args


@dataclass(frozen=True)
class JobSpec:
    """A CustomJob, as the REST/proto field names (snake_case), plus where it runs."""

    project: str
    location: str
    staging_bucket: str
    custom_job: dict[str, Any]

    @property
    def display_name(self) -> str:
        return str(self.custom_job["display_name"])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.custom_job.get("labels") or {})

    @property
    def worker_pool_specs(self) -> list[dict[str, Any]]:
        return list(self.custom_job["job_spec"]["worker_pool_specs"])

    @property
    def output_uri(self) -> str:
        return str(self.custom_job["job_spec"]["base_output_directory"]["output_uri_prefix"])

    @property
    def scheduling(self) -> dict[str, Any]:
        return dict(self.custom_job["job_spec"].get("scheduling") or {})

    @property
    def replica_count(self) -> int:
        return sum(int(p.get("replica_count", 1)) for p in self.worker_pool_specs)

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "location": self.location,
            "staging_bucket": self.staging_bucket,
            "custom_job": copy.deepcopy(self.custom_job),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobSpec:
        try:
            return cls(str(data["project"]), str(data["location"]), str(data["staging_bucket"]), dict(data["custom_job"]))
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"not a job spec (missing {exc})") from None


def machine_spec(config: EdgeConfig) -> dict[str, Any]:
    training = config.vertex.training
    spec: dict[str, Any] = {"machine_type": training.machine_type}
    if training.accelerator_type and training.accelerator_count > 0:
        spec["accelerator_type"] = training.accelerator_type
        spec["accelerator_count"] = training.accelerator_count
    return spec


def build_job_spec(
    config: EdgeConfig,
    inputs: TrainerInputs,
    *,
    output_uri: str,
    name: str,
    image: str,
    project: str,
    location: str,
    staging_bucket: str,
    replica_count: int | None = None,
    backend: str = "vertex",
) -> JobSpec:
    """The CustomJob for one training run (pure: no network, no clock, no environment)."""
    replicas = replica_count if replica_count is not None else config.vertex.training.replica_count
    if replicas < 1:
        raise UsageError(f"replica count {replicas}: expected at least 1")
    container = {
        "image_uri": image,
        "command": ["python", "-m", TASK_MODULE],
        "args": inputs.args(join(output_uri, REPORT_DIR)),
        "env": [{"name": k, "value": v} for k, v in CONTAINER_ENV.items()],
    }
    chief = {
        "machine_spec": machine_spec(config),
        "replica_count": 1,
        "disk_spec": dict(BOOT_DISK),
        "container_spec": container,
    }
    pools = [chief]
    if replicas > 1:
        pools.append({**copy.deepcopy(chief), "replica_count": replicas - 1})
    labels = {
        "managed-by": "vertex-edge",
        "model": gcp_label(inputs.model_name),
        "git_commit": gcp_label(inputs.git_commit or "none"),
        "git_dirty": "true" if inputs.git_dirty else "false",
        "data_version": gcp_label(inputs.data_version or "unknown"),
        "backend": gcp_label(backend),
    }
    custom_job = {
        "display_name": name,
        "labels": labels,
        "job_spec": {
            "worker_pool_specs": pools,
            "base_output_directory": {"output_uri_prefix": output_uri},
            # with several replicas a restarted VM restarts them all: the collective group re-forms
            # and every replica resumes from the same checkpoint
            "scheduling": {"restart_job_on_worker_restart": replicas > 1},
        },
    }
    return JobSpec(project=project, location=location, staging_bucket=staging_bucket, custom_job=custom_job)


def to_custom_job(spec: JobSpec, *, aiplatform: Any = None, credentials: Any = None) -> Any:
    """The SDK's ``aiplatform.CustomJob`` for ``spec``. Builds the request offline (no API call);
    ``credentials`` may be ``AnonymousCredentials()`` in tests."""
    if aiplatform is None:
        from google.cloud import aiplatform as aiplatform_module

        aiplatform = aiplatform_module
    return aiplatform.CustomJob(
        display_name=spec.display_name,
        worker_pool_specs=copy.deepcopy(spec.worker_pool_specs),
        base_output_dir=spec.output_uri,
        project=spec.project,
        location=spec.location,
        credentials=credentials,
        labels=spec.labels,
        staging_bucket=spec.staging_bucket,
    )
