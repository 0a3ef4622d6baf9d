"""Submitting and waiting: progress lines, failure, Ctrl-C -> confirm -> cancel, downloads, and the
SDK calls VertexJobs makes (the aiplatform module is a fake: no network)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from tests.vertex.test_job import make_spec
from vertex_edge.errors import CloudError, DataError
from vertex_edge.gcp.files import Files, join
from vertex_edge.vertex.submit import (
    CANCELLED,
    FAILED,
    SUCCEEDED,
    JobStatus,
    VertexJobs,
    run_job,
    wait_for_job,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def __call__(self) -> float:
        return self.now


class ScriptedJobs:
    """A backend whose job walks through ``states``; optionally raises Ctrl-C at one poll."""

    kind = "vertex"

    def __init__(self, states: list[str], *, interrupt_at: int | None = None, error: str = "",
                 output_uri: str = "", fail_polls: int = 0) -> None:  # fmt: skip
        self.states = list(states)
        self.interrupt_at = interrupt_at
        self.error = error
        self.output_uri = output_uri
        self.fail_polls = fail_polls
        self.polls = 0
        self.cancelled: list[str] = []
        self.submitted: list[Any] = []

    def submit(self, spec: Any) -> str:
        self.submitted.append(spec)
        return "projects/1/locations/europe-west4/customJobs/42"

    def attach(self, name: str) -> Any:
        return make_spec()

    def status(self, name: str) -> JobStatus:
        self.polls += 1
        if self.fail_polls:
            self.fail_polls -= 1
            raise CloudError("cannot reach Google Cloud (timeout)")
        if self.interrupt_at is not None and self.polls == self.interrupt_at:
            self.interrupt_at = None
            raise KeyboardInterrupt
        if self.cancelled:
            return JobStatus(name, CANCELLED)
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return JobStatus(name, state, self.error if state == FAILED else "", self.output_uri)

    def cancel(self, name: str) -> None:
        self.cancelled.append(name)

    def links(self, name: str) -> dict[str, str]:
        return {"logs": "https://logs.example/42"}


def test_wait_prints_a_line_per_state_and_a_heartbeat() -> None:
    clock = Clock()
    jobs = ScriptedJobs(["JOB_STATE_QUEUED", "JOB_STATE_PENDING"] + ["JOB_STATE_RUNNING"] * 25 + [SUCCEEDED])
    lines: list[str] = []
    status = wait_for_job(jobs, "j", echo=lines.append, poll_s=30, heartbeat_s=300, sleep=clock.sleep, clock=clock)
    assert status.state == SUCCEEDED
    assert lines[:3] == ["job queued (0:00)", "job pending (0:30)", "job running (1:00)"]
    assert any(line.startswith("job still running (") for line in lines)
    assert lines[-1].startswith("job succeeded (")


def test_transient_poll_errors_are_retried_then_reported() -> None:
    clock = Clock()
    lines: list[str] = []
    ok = ScriptedJobs([SUCCEEDED], fail_polls=2)
    assert wait_for_job(ok, "j", echo=lines.append, sleep=clock.sleep, clock=clock).state == SUCCEEDED
    assert sum("retrying" in line for line in lines) == 2
    lost = ScriptedJobs([SUCCEEDED], fail_polls=50)
    with pytest.raises(CloudError, match="lost track of job"):
        wait_for_job(lost, "j", echo=lines.append, sleep=clock.sleep, clock=clock)


def _run(jobs: ScriptedJobs, tmp_path: Path, *, confirm: bool = True, files: Files | None = None) -> Any:
    clock = Clock()
    lines: list[str] = []
    outcome = run_job(
        jobs, make_spec(), files=files or Files(), download_to=tmp_path / "dl", echo=lines.append,
        confirm_cancel=lambda name: confirm, sleep=clock.sleep, clock=clock,
    )  # fmt: skip
    return outcome, lines


def test_failed_job_raises_with_its_error_and_where_the_logs_are(tmp_path: Path) -> None:
    jobs = ScriptedJobs(["JOB_STATE_RUNNING", FAILED], error="The replica workerpool0-0 exited with a non-zero status of 1")
    with pytest.raises(CloudError) as err:
        _run(jobs, tmp_path)
    assert "ended failed: The replica workerpool0-0 exited" in err.value.message
    assert "https://logs.example/42" in (err.value.hint or "")


def test_job_cancelled_elsewhere_is_reported(tmp_path: Path) -> None:
    with pytest.raises(CloudError, match="was cancelled"):
        _run(ScriptedJobs([CANCELLED]), tmp_path)


def test_ctrl_c_confirmed_cancels_the_remote_job(tmp_path: Path) -> None:
    jobs = ScriptedJobs(["JOB_STATE_RUNNING"], interrupt_at=2)
    with pytest.raises(KeyboardInterrupt):
        _run(jobs, tmp_path, confirm=True)
    assert jobs.cancelled == ["projects/1/locations/europe-west4/customJobs/42"]


def test_ctrl_c_declined_keeps_the_job_and_says_how_to_attach(tmp_path: Path) -> None:
    jobs = ScriptedJobs(["JOB_STATE_RUNNING"], interrupt_at=2)
    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_job(
            jobs, make_spec(), files=Files(), download_to=tmp_path, echo=lines.append,
            confirm_cancel=lambda name: False, sleep=lambda s: None,
        )  # fmt: skip
    assert jobs.cancelled == []
    assert any("--attach projects/1/locations/europe-west4/customJobs/42" in line for line in lines)


def _fake_outputs(base: Path) -> None:
    (base / "model").mkdir(parents=True)
    (base / "model" / "model.keras").write_bytes(b"k")
    (base / "model" / "model_card.json").write_text("{}")
    (base / "report").mkdir()
    (base / "report" / "run.json").write_text(json.dumps({"test_accuracy": 0.9, "model_dir": str(base / "model")}))


def test_success_downloads_model_and_report(tmp_path: Path) -> None:
    out = tmp_path / "job-output"
    _fake_outputs(out)
    outcome, lines = _run(ScriptedJobs([SUCCEEDED], output_uri=str(out)), tmp_path)
    assert (outcome.local_dir / "model" / "model.keras").read_bytes() == b"k"
    assert outcome.summary["test_accuracy"] == 0.9
    assert outcome.name == "projects/1/locations/europe-west4/customJobs/42"
    assert "  logs: https://logs.example/42" in lines


def test_success_without_a_report_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="wrote no run.json"):
        _run(ScriptedJobs([SUCCEEDED], output_uri=str(tmp_path / "empty")), tmp_path)


def test_downloads_from_gcs(emulator_files: Files, tmp_path: Path) -> None:
    local = tmp_path / "made"
    _fake_outputs(local)
    base = "gs://edge-test/vertex/jobs/done"
    emulator_files.upload_tree(local / "model", join(base, "model"))
    emulator_files.write_bytes(join(base, "report", "run.json"), json.dumps({"test_accuracy": 0.8}).encode())
    outcome, _ = _run(ScriptedJobs([SUCCEEDED], output_uri=base), tmp_path, files=emulator_files)
    assert (outcome.local_dir / "model" / "model.keras").is_file()
    assert outcome.summary == {"test_accuracy": 0.8}


# --- the SDK calls -------------------------------------------------------------------------


class FakeCustomJob:
    created: list[dict[str, Any]] = []
    submits: list[dict[str, Any]] = []
    cancels: list[str] = []
    state = "JOB_STATE_RUNNING"

    def __init__(self, **kwargs: Any) -> None:
        FakeCustomJob.created.append(kwargs)
        self.resource_name = ""

    def submit(self, **kwargs: Any) -> None:
        FakeCustomJob.submits.append(kwargs)
        self.resource_name = "projects/123/locations/europe-west4/customJobs/777"

    @classmethod
    def get(cls, name: str, **kwargs: Any) -> Any:
        job = SimpleNamespace(
            gca_resource=SimpleNamespace(
                state=SimpleNamespace(name=cls.state),
                error=SimpleNamespace(code=3 if cls.state == FAILED else 0, message="boom"),
                job_spec=SimpleNamespace(base_output_directory=SimpleNamespace(output_uri_prefix="gs://b/vertex/jobs/x")),
            ),
            cancel=lambda: FakeCustomJob.cancels.append(name),
        )
        return job


def test_vertex_jobs_calls_the_sdk() -> None:
    aip = SimpleNamespace(CustomJob=FakeCustomJob)
    jobs = VertexJobs(aip, project="my-proj-123", location="europe-west4", credentials="creds")
    spec = make_spec(replicas=2)
    name = jobs.submit(spec)
    assert name == "projects/123/locations/europe-west4/customJobs/777"
    created = FakeCustomJob.created[-1]
    assert created["display_name"] == spec.display_name
    assert created["worker_pool_specs"] == spec.worker_pool_specs
    assert created["base_output_dir"] == spec.output_uri
    assert (created["project"], created["location"], created["credentials"]) == ("my-proj-123", "europe-west4", "creds")
    assert FakeCustomJob.submits[-1] == {"restart_job_on_worker_restart": True}
    status = jobs.status(name)
    assert (status.state, status.error, status.output_uri) == ("JOB_STATE_RUNNING", "", "gs://b/vertex/jobs/x")
    FakeCustomJob.state = FAILED
    assert jobs.status(name).error == "boom"
    jobs.cancel(name)
    assert FakeCustomJob.cancels == [name]
    links = jobs.links(name)
    assert "vertex-ai/locations/europe-west4/training/777" in links["job page"]
    assert "project=my-proj-123" in links["logs"] and "777" in links["logs"]
    assert links["stream logs"] == "gcloud ai custom-jobs stream-logs 777 --region=europe-west4 --project=my-proj-123"


def test_sdk_errors_become_cloud_errors() -> None:
    class Refusing(FakeCustomJob):
        def submit(self, **kwargs: Any) -> None:
            raise gexc.PermissionDenied("aiplatform.customJobs.create denied")

    jobs = VertexJobs(SimpleNamespace(CustomJob=Refusing), project="p-12345", location="europe-west4")
    with pytest.raises(CloudError, match="cannot submit the training job"):
        jobs.submit(make_spec())


def test_a_missing_training_image_is_refused_before_submitting() -> None:
    from vertex_edge.errors import UsageError
    from vertex_edge.vertex.submit import artifact_registry_check

    asked: list[str] = []

    class Registry:
        def get_tag(self, name: str) -> None:
            asked.append(name)
            raise gexc.NotFound("tag not found")

    FakeCustomJob.created.clear()
    jobs = VertexJobs(SimpleNamespace(CustomJob=FakeCustomJob), project="my-proj-123", location="europe-west4",
                      image_check=artifact_registry_check(Registry()))  # fmt: skip
    with pytest.raises(UsageError, match="is not in Artifact Registry") as err:
        jobs.submit(make_spec())
    assert "make images-push" in (err.value.hint or "")
    assert asked == [
        "projects/my-proj-123/locations/europe-west4/repositories/edge/packages/trainer/tags/" + "3f2a9c1d" + "0" * 32
    ]
    assert FakeCustomJob.created == []  # nothing was submitted
    artifact_registry_check(Registry())("docker.io/library/python:3.11")  # other registries: not checked



