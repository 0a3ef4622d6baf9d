"""Two replicas on this CPU, as Vertex AI runs a 2-replica job: CLUSTER_SPEC/TF_CONFIG on
localhost, MultiWorkerMirroredStrategy, only the chief writes outputs (about 40 s)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.vertex.conftest import TINY_PARAMS
from vertex_edge.config import EdgeConfig
from vertex_edge.params import TrainParams
from vertex_edge.vertex.job import TrainerInputs, build_job_spec
from vertex_edge.vertex.local_jobs import LocalJobs
from vertex_edge.vertex.submit import SUCCEEDED


@pytest.mark.slow
def test_two_replicas_train_with_multi_worker_mirrored_strategy(prepared: Path, tmp_path: Path) -> None:
    inputs = TrainerInputs(params=TrainParams.model_validate(TINY_PARAMS), model_name="fashion-mnist",
                           data_uri=str(prepared), data_version="x", ood_fpr=0.02)  # fmt: skip
    base = tmp_path / "job"
    spec = build_job_spec(EdgeConfig(), inputs, output_uri=str(base), name="mw", image="local", project="local",
                          location="local", staging_bucket="", replica_count=2, backend="vertex-local")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "CLUSTER_SPEC")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    jobs = LocalJobs(jobs_root=tmp_path / "jobs", cwd=REPO, env=env, timeout_s=300)
    name = jobs.submit(spec)
    status = jobs.status(name)
    assert status.state == SUCCEEDED, status.error
    report = json.loads((base / "report" / "run.json").read_text())
    assert report["replicas"] == 2 and report["strategy"] == "MultiWorkerMirroredStrategy"
    assert sorted(p.name for p in (base / "model").iterdir()) == ["model.keras", "model.onnx", "model_card.json"]
    assert json.loads((base / "checkpoints" / "checkpoint.json").read_text())["epoch"] == TINY_PARAMS["epochs"]
