"""The Vertex pipeline's train stage: plan (dry run), and whole runs where only the Vertex AI API is
faked - the job really runs (the vertex-local backend) against the GCS emulator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.vertex.conftest import TINY_PARAMS
from vertex_edge.artifact import ModelCard
from vertex_edge.config import parse_config
from vertex_edge.params import load_params
from vertex_edge.tracking.target import TrackingTarget
from vertex_edge.training.run import TrainOutputs, run_training, train_metrics
from vertex_edge.vertex.backend import VertexBackend, VertexOptions, data_digest, plan_job
from vertex_edge.vertex.local_jobs import LocalJobs

LOCAL_INFO = {"data_version", "git", "host", "pid", "backend", "dvc", "test_metrics", "model"}  # what the local stage records
METRICS = {"loss", "accuracy", "val_loss", "val_accuracy", "test_accuracy"}


def write_params(path: Path) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"train": TINY_PARAMS, "evaluate": {"min_accuracy": 0.0}}))
    return path


def outputs(repo: Path) -> TrainOutputs:
    return TrainOutputs(repo / "models" / "fashion-mnist", repo / "metrics" / "train.json",
                        repo / "reports" / "train_history.csv")  # fmt: skip


def run_stage(opts: VertexOptions, *, backend: Any, files: Any, tracking: TrackingTarget, echo: Any,
              confirm_cancel: Any) -> ModelCard:  # fmt: skip
    """The one tracked run with the Vertex backend, as the stage runs it."""
    vertex = VertexBackend(opts, backend, files, echo, confirm_cancel)
    artifact = run_training(
        backend=vertex, data_dir=opts.data_dir, params=load_params(opts.params_path).train, outputs=outputs(opts.repo),
        tracking=tracking, model_name=opts.config.model.name, repo=opts.repo, echo=echo,
    )  # fmt: skip
    return artifact.card


def options(tmp_path: Path, prepared: Path, *, backend: str = "vertex", **kw: Any) -> VertexOptions:
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    data = repo / "data" / "prepared"
    if not data.exists():
        shutil.copytree(prepared, data)
    config = parse_config(
        {
            "target": "gcp",
            "storage": {"root": str(tmp_path / "store")},
            "gcp": {"project": "my-proj-123", "region": "europe-west4", "bucket": "edge-test"},
            "vertex": {"training": {"image": "europe-west4-docker.pkg.dev/my-proj-123/edge/trainer:test"}},
        }
    )
    return VertexOptions(
        repo=repo, config=config, data_dir=data, params_path=write_params(repo / "params.yaml"),
        job_record=repo / "vertex_job.json", backend=backend, poll_s=0.01, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_dry_run_plan_stages_nothing(tmp_path: Path, prepared: Path) -> None:
    opts = options(tmp_path, prepared)
    spec, inputs = plan_job(opts, files=None, upload=False)
    digest = data_digest(opts.data_dir)
    assert inputs.data_uri == f"gs://edge-test/vertex/staging/prepared/{digest}"
    assert spec.output_uri.startswith("gs://edge-test/vertex/jobs/fashion-mnist-train-nogit-")
    assert spec.worker_pool_specs[0]["container_spec"]["image_uri"].endswith("/trainer:test")
    assert inputs.data_version == json.loads((prepared / "meta.json").read_text())["data_version"]
    local, _ = plan_job(options(tmp_path, prepared, backend="vertex-local"), files=None, upload=False)
    assert local.output_uri.startswith(str(tmp_path / "store" / "vertex-local" / "jobs"))


class EmulatedVertex:
    """Vertex AI's job API, faked: the job runs here (LocalJobs) with its gs:// AIP_* folders on the
    GCS emulator, under a Vertex-like resource name."""

    kind = "vertex"

    def __init__(self, local: LocalJobs) -> None:
        self.local = local
        self.names: dict[str, str] = {}

    def submit(self, spec: Any) -> str:
        local_name = self.local.submit(spec)
        name = "projects/123/locations/europe-west4/customJobs/9001"
        self.names[name] = local_name
        return name

    def attach(self, name: str) -> Any:
        raise AssertionError("not used")

    def status(self, name: str) -> Any:
        status = self.local.status(self.names[name])
        status.name = name
        return status

    def cancel(self, name: str) -> None:
        raise AssertionError("not used")

    def links(self, name: str) -> dict[str, str]:
        return {"logs": "https://console.cloud.google.com/logs/query;query=9001"}


@pytest.mark.slow
def test_vertex_stage_with_a_fake_api_and_the_gcs_emulator(
    tmp_path: Path, prepared: Path, emulator_files: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    opts = options(tmp_path, prepared)
    backend = EmulatedVertex(LocalJobs(jobs_root=tmp_path / "jobs", cwd=Path(__file__).resolve().parents[2],
                                       env=dict(os.environ)))  # fmt: skip
    lines: list[str] = []
    card = run_stage(
        opts, backend=backend, files=emulator_files, tracking=TrackingTarget("file", path=tmp_path / "experiments"),
        echo=lines.append, confirm_cancel=lambda name: pytest.fail("no Ctrl-C here"),
    )  # fmt: skip
    # the data was staged once, content-addressed, in the bucket
    digest = data_digest(opts.data_dir)
    assert emulator_files.listdir(f"gs://edge-test/vertex/staging/prepared/{digest}") == ["meta.json", "test.npz", "train.npz"]
    # the job wrote its outputs under the bucket; the stage downloaded them into the local outputs
    record = json.loads(opts.job_record.read_text())
    assert record["name"] == "projects/123/locations/europe-west4/customJobs/9001"
    assert record["backend"] == "vertex" and record["state"] == "JOB_STATE_SUCCEEDED"
    assert record["output_uri"].startswith("gs://edge-test/vertex/jobs/")
    assert record["spec"]["custom_job"]["job_spec"]["base_output_directory"]["output_uri_prefix"] == record["output_uri"]
    assert record["sacred_run_id"] == "1" and record["model_version"] == card.version
    assert "model.onnx" in emulator_files.listdir(record["output_uri"] + "/model")
    out = outputs(opts.repo)
    assert sorted(p.name for p in out.model_dir.iterdir()) == ["model.keras", "model.onnx", "model_card.json"]
    assert json.loads(out.metrics.read_text()) == train_metrics(card)
    assert json.loads(out.metrics.read_text())["sacred_run_id"] == "1"
    assert out.history.read_text().splitlines()[0] == "epoch,loss,accuracy,val_loss,val_accuracy"
    assert card.sacred_run_id == "1" and card.training["vertex_job"]["name"] == record["name"]
    # the job's export is the served model: downloaded and verified by sha256, not exported again
    assert record["model_sha256"] == card.onnx_sha256
    # Sacred: the local stage's fields, plus the job
    run_dir = tmp_path / "experiments" / "1"
    info = json.loads((run_dir / "info.json").read_text())
    assert set(info) == LOCAL_INFO | {"vertex_job"}
    assert info["vertex_job"]["name"] == record["name"]
    assert set(json.loads((run_dir / "metrics.json").read_text())) == METRICS
    assert json.loads((run_dir / "run.json").read_text())["status"] == "COMPLETED"
    assert json.loads((run_dir / "config.json").read_text())["epochs"] == TINY_PARAMS["epochs"]
    assert any(line.startswith("submitted projects/123/") for line in lines)
    assert "  logs: https://console.cloud.google.com/logs/query;query=9001" in lines


@pytest.mark.slow
def test_vertex_local_stage_on_a_local_folder_and_attach_resumes(tmp_path: Path, prepared: Path) -> None:
    import os

    opts = options(tmp_path, prepared, backend="vertex-local")
    jobs = LocalJobs(jobs_root=opts.local_jobs_root(), cwd=Path(__file__).resolve().parents[2], env=dict(os.environ))
    from vertex_edge.gcp.files import Files

    card = run_stage(opts, backend=jobs, files=Files(), tracking=TrackingTarget("off"), echo=lambda line: None,
                     confirm_cancel=lambda name: False)  # fmt: skip
    record = json.loads(opts.job_record.read_text())
    assert record["backend"] == "vertex-local" and record["name"].startswith("local/fashion-mnist-train-")
    job_dir = Path(record["output_uri"])
    assert (job_dir / "checkpoints" / "checkpoint.json").is_file() and (job_dir / "job.json").is_file()
    assert card.sacred_run_id is None  # tracking off
    # --attach runs the same job again: everything is checkpointed, so nothing is trained twice
    again = VertexOptions(**{**opts.__dict__, "attach": record["name"]})
    card2 = run_stage(again, backend=jobs, files=Files(), tracking=TrackingTarget("off"), echo=lambda line: None,
                      confirm_cancel=lambda name: False)  # fmt: skip
    assert card2.training["resumed_from_epoch"] == TINY_PARAMS["epochs"]
    assert card2.metrics.epochs_run == TINY_PARAMS["epochs"]
