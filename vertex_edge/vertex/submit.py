"""Submit a training job, wait for it with progress, handle failure and Ctrl-C, fetch its outputs.

A :class:`JobBackend` runs a :class:`~vertex_edge.vertex.job.JobSpec`: :class:`VertexJobs` on
Vertex AI (the ``aiplatform`` SDK is injected, so tests assert its calls offline), or
:class:`~vertex_edge.vertex.local_jobs.LocalJobs` here (``vertex-local``). :func:`run_job` is the same
for both: submit (or attach to a running job), print where the logs are, poll the state with a
line per change, and on success download ``<output>/model`` and ``<output>/report``. Ctrl-C
while waiting asks (through an injected callback) whether to cancel the remote job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from vertex_edge.errors import CloudError, DataError, EdgeError, UsageError
from vertex_edge.gcp.errors import google_call, is_not_found
from vertex_edge.gcp.files import Files, join
from vertex_edge.state import utcnow
from vertex_edge.vertex.job import REPORT_DIR, JobSpec, to_custom_job

log = logging.getLogger(__name__)

SUCCEEDED = "JOB_STATE_SUCCEEDED"
FAILED = "JOB_STATE_FAILED"
CANCELLED = "JOB_STATE_CANCELLED"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, "JOB_STATE_EXPIRED", "JOB_STATE_PARTIALLY_SUCCEEDED"})
RUN_SUMMARY = "run.json"
MAX_POLL_ERRORS = 5
CANCEL_WAIT_S = 300.0  # how long an interrupted wait watches the cancelled job stop

Echo = Callable[[str], None]


@dataclass
class JobStatus:
    name: str
    state: str
    error: str = ""
    output_uri: str = ""

    @property
    def short_state(self) -> str:
        return self.state.removeprefix("JOB_STATE_").lower().replace("_", " ")


class JobBackend(Protocol):
    kind: str

    def submit(self, spec: JobSpec) -> str:
        """Start the job; return its name (a Vertex AI resource name)."""

    def attach(self, name: str) -> JobSpec:
        """The spec of an existing job (``vertex-local`` runs it again, resuming its checkpoint)."""

    def status(self, name: str) -> JobStatus: ...

    def cancel(self, name: str) -> None: ...

    def links(self, name: str) -> dict[str, str]:
        """Where to watch the job and read its logs."""


@dataclass
class JobOutcome:
    backend: str
    name: str
    spec: JobSpec
    status: JobStatus
    links: dict[str, str]
    submitted: str
    finished: str
    seconds: float
    local_dir: Path  # the downloaded model/ and report/
    summary: dict[str, Any] = field(default_factory=dict)  # report/run.json

    @property
    def output_uri(self) -> str:
        return self.status.output_uri or self.spec.output_uri


def elapsed(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def wait_for_job(
    backend: JobBackend,
    name: str,
    *,
    echo: Echo,
    poll_s: float = 30.0,
    heartbeat_s: float = 300.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> JobStatus:
    """Poll until the job ends: a line per state change, and a heartbeat line while it runs.
    A few failed polls in a row (network blips) are retried before giving up."""
    started = clock()
    last_state: str | None = None
    last_line = started
    errors = 0
    while True:
        try:
            status = backend.status(name)
            errors = 0
        except CloudError as exc:
            errors += 1
            if errors >= MAX_POLL_ERRORS:
                raise CloudError(
                    f"lost track of job {name}: {exc.message}",
                    hint="the job may still run: check its page, or wait for it with --attach",
                ) from None
            echo(f"could not read the job state ({exc.message}); retrying")
            sleep(min(poll_s * errors, 120.0))
            continue
        now = clock()
        if status.state != last_state:
            echo(f"job {status.short_state} ({elapsed(now - started)})")
            last_state, last_line = status.state, now
        elif now - last_line >= heartbeat_s:
            echo(f"job still {status.short_state} ({elapsed(now - started)})")
            last_line = now
        if status.state in TERMINAL:
            return status
        sleep(poll_s)


def run_job(
    backend: JobBackend,
    spec: JobSpec | None,
    *,
    files: Files,
    download_to: Path,
    echo: Echo,
    confirm_cancel: Callable[[str], bool],
    attach: str | None = None,
    poll_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> JobOutcome:
    """Submit ``spec`` (or attach to the job named ``attach``), wait, download the outputs."""
    submitted = utcnow()
    t0 = clock()
    if attach:
        echo(f"attaching to {attach}")
        spec = backend.attach(attach)
        name = attach
    else:
        if spec is None:
            raise ValueError("a spec or a job to attach to is needed")
        echo(f"submitting {spec.display_name} ({backend.kind}, {spec.replica_count} replica(s))")
        name = backend.submit(spec)
        echo(f"submitted {name}")
    links = backend.links(name)
    for what, where in links.items():
        echo(f"  {what}: {where}")
    try:
        status = wait_for_job(backend, name, echo=echo, poll_s=poll_s, sleep=sleep, clock=clock)
    except KeyboardInterrupt:
        _interrupted(backend, name, confirm_cancel, echo, sleep=sleep, clock=clock)
        raise
    if status.state != SUCCEEDED:
        detail = f": {status.error}" if status.error else ""
        verb = "was cancelled" if status.state == CANCELLED else f"ended {status.short_state}"
        raise CloudError(
            f"training job {name} {verb}{detail}",
            hint=f"logs: {links.get('logs', '-')}" if links else None,
        )
    outcome = JobOutcome(
        backend=backend.kind, name=name, spec=spec, status=status, links=links, submitted=submitted,
        finished=utcnow(), seconds=clock() - t0, local_dir=download_to,
    )  # fmt: skip
    outcome.summary = download_outputs(files, outcome.output_uri, download_to)
    return outcome


def download_outputs(files: Files, output_uri: str, dest: Path) -> dict[str, Any]:
    """Fetch ``model/`` and ``report/`` of a finished job; return ``report/run.json``."""
    import json

    report_uri = join(output_uri, REPORT_DIR)
    try:
        summary = json.loads(files.read_bytes(join(report_uri, RUN_SUMMARY)))
    except DataError:
        raise DataError(
            f"the job succeeded but wrote no {RUN_SUMMARY} under {report_uri}",
            hint="was the image built from this commit? ('make images-push')",
        ) from None
    model_uri = str(summary.get("model_dir") or join(output_uri, "model"))
    names = files.download_tree(model_uri, dest / "model")
    if "model.keras" not in names:
        raise DataError(f"the job wrote no model.keras under {model_uri}")
    files.download_tree(report_uri, dest / REPORT_DIR)
    return dict(summary)


def _interrupted(
    backend: JobBackend,
    name: str,
    confirm_cancel: Callable[[str], bool],
    echo: Echo,
    *,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> None:
    try:
        cancel = confirm_cancel(name)
    except (KeyboardInterrupt, EOFError):
        cancel = False
    if not cancel:
        echo(f"the job keeps running: {name}")
        echo(f"  wait for it again (and write the outputs) with: python edge.py train --backend {backend.kind} --attach {name}")
        return
    echo(f"cancelling {name} ...")
    try:
        backend.cancel(name)
        deadline = clock() + CANCEL_WAIT_S
        while clock() < deadline:
            status = backend.status(name)
            if status.state in TERMINAL:
                echo(f"job {status.short_state}")
                return
            sleep(5.0)
        echo("the job is still cancelling; it will stop shortly")
    except (EdgeError, KeyboardInterrupt) as exc:
        echo(f"could not confirm the cancellation ({exc}); check the job page")


class VertexJobs:
    """Vertex AI custom jobs through the ``aiplatform`` SDK (injected: the module or a fake)."""

    kind = "vertex"

    def __init__(
        self,
        aiplatform: Any,
        *,
        project: str,
        location: str,
        credentials: Any = None,
        image_check: Callable[[str], None] | None = None,
    ) -> None:
        self.aip = aiplatform
        self.project = project
        self.location = location
        self.credentials = credentials
        self.image_check = image_check  # raises when an image is missing (before paying for a job)

    def submit(self, spec: JobSpec) -> str:
        if self.image_check is not None:
            for image in sorted({p["container_spec"]["image_uri"] for p in spec.worker_pool_specs}):
                self.image_check(image)
        job = to_custom_job(spec, aiplatform=self.aip, credentials=self.credentials)
        restart = bool(spec.scheduling.get("restart_job_on_worker_restart", False))
        google_call("cannot submit the training job", lambda: job.submit(restart_job_on_worker_restart=restart))
        return str(job.resource_name)

    def _get(self, name: str) -> Any:
        return google_call(
            f"cannot read job {name}",
            lambda: self.aip.CustomJob.get(name, project=self.project, location=self.location, credentials=self.credentials),
        )

    def attach(self, name: str) -> JobSpec:
        resource = self._get(name).gca_resource
        data = type(resource).to_dict(resource, use_integers_for_enums=False)
        custom_job = {k: data[k] for k in ("display_name", "labels", "job_spec") if k in data}
        return JobSpec(project=self.project, location=self.location, staging_bucket="", custom_job=custom_job)

    def status(self, name: str) -> JobStatus:
        resource = self._get(name).gca_resource
        error = resource.error.message if getattr(resource.error, "code", 0) else ""
        return JobStatus(
            name=name,
            state=resource.state.name,
            error=error,
            output_uri=str(resource.job_spec.base_output_directory.output_uri_prefix or ""),
        )

    def cancel(self, name: str) -> None:
        job = self._get(name)
        google_call(f"cannot cancel job {name}", job.cancel)

    def links(self, name: str) -> dict[str, str]:
        job_id = name.rsplit("/", 1)[-1]
        query = quote(f'resource.type="ml_job"\nresource.labels.job_id="{job_id}"', safe="")
        return {
            "job page": f"https://console.cloud.google.com/vertex-ai/locations/{self.location}/training/{job_id}/cpu"
            f"?project={self.project}",
            "logs": f"https://console.cloud.google.com/logs/query;query={query}?project={self.project}",
            "stream logs": f"gcloud ai custom-jobs stream-logs {job_id} --region={self.location} --project={self.project}",
        }


def artifact_registry_check(client: Any) -> Callable[[str], None]:
    """A check that an Artifact Registry image tag exists (``<region>-docker.pkg.dev/...:<tag>``);
    other registries are not checked."""
    def check(image: str) -> None:
        host, _, path = image.partition("/")
        if not host.endswith("-docker.pkg.dev") or ":" not in path:
            return
        location = host.removesuffix("-docker.pkg.dev")
        project, repository, rest = (path.split("/", 2) + ["", ""])[:3]
        package, _, tag = rest.rpartition(":")
        name = (
            f"projects/{project}/locations/{location}/repositories/{repository}/packages/"
            f"{quote(package, safe='')}/tags/{tag}"
        )
        def get() -> None:
            try:
                client.get_tag(name=name)
            except Exception as exc:
                if is_not_found(exc):
                    raise UsageError(
                        f"the image {image} is not in Artifact Registry",
                        hint="build and push the images for this commit: 'make images-push' "
                        "(or name one in edge.yaml: vertex.training.image / vertex.serving.image)",
                    ) from None
                raise

        google_call(f"cannot check the image {image}", get)

    return check
