"""`dvc repro` with the Vertex pipeline (dvc-step2.yaml) as a user runs it, the job run here by the
vertex-local backend; then the local stage on the same data records the same Sacred fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import git, run_edge, tool_env
from tests.integration.test_pipeline import dvc, set_params
from tests.synthetic import make_dataset

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_vertex_pipeline_repro_with_vertex_local(project: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    manifest = make_dataset(mirror, n_train=240, n_test=80)
    (project / "data" / "fashion-mnist.yaml").write_text(manifest.read_text())
    set_params(project, epochs=2, batch_size=32, augment={"flip": False, "shift": 0}, model={"filters": [4], "dense": 8})
    git(project, "commit", "-qam", "tiny data and params")
    env = tool_env(EDGE_DATA_MIRROR=str(mirror), EDGE_TRAIN_BACKEND="vertex-local")

    assert run_edge(project, "setup", "--target", "local", "--yes", env=env).returncode == 0
    assert run_edge(project, "data", "seed", env=env).returncode == 0
    use = run_edge(project, "pipeline", "use", "vertex", env=env)
    assert use.returncode == 0, use.stderr

    first = dvc(project, "repro", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    for stage in ("prepare", "train", "evaluate"):
        assert f"Running stage '{stage}'" in first.stdout
    assert "submitted local/fashion-mnist-train-" in first.stdout
    record = json.loads((project / "vertex_job.json").read_text())
    assert record["backend"] == "vertex-local" and record["state"] == "JOB_STATE_SUCCEEDED"
    card = json.loads((project / "models" / "fashion-mnist" / "model_card.json").read_text())
    assert card["sacred_run_id"] == "1" and card["training"]["vertex_job"]["name"] == record["name"]
    assert card["git"]["commit"] == git(project, "rev-parse", "HEAD").strip()
    assert json.loads((project / "metrics" / "evaluate.json").read_text())["accuracy"] >= 0.0
    lock = (project / "dvc.lock").read_text()
    assert "vertex_job.json" in lock and "steps.train_vertex" in lock
    # vertex_job.json is tracked by DVC (cache: false) and stays visible to git
    assert "vertex_job.json" not in (project / ".gitignore").read_text()

    again = dvc(project, "repro", env=env)
    assert again.returncode == 0 and "Running stage" not in again.stdout

    # the local stage on the same data: the Vertex run recorded the same fields, plus the job
    local = run_edge(project, "train", "--backend", "local", env=env)
    assert local.returncode == 0, local.stderr
    runs = project / ".edge" / "experiments"
    vertex_info = json.loads((runs / "1" / "info.json").read_text())
    local_info = json.loads((runs / "2" / "info.json").read_text())
    assert set(vertex_info) == set(local_info) | {"vertex_job"}
    assert set(json.loads((runs / "1" / "metrics.json").read_text())) == set(json.loads((runs / "2" / "metrics.json").read_text()))
    assert json.loads((runs / "1" / "config.json").read_text()) == json.loads((runs / "2" / "config.json").read_text())


def test_vertex_local_on_a_gcs_emulator_bucket(project: Path, prepared: Path, gcs_emulator: str) -> None:
    import shutil

    shutil.copytree(prepared, project / "data" / "prepared")
    set_params(project, epochs=1, batch_size=32, augment={"flip": False, "shift": 0}, model={"filters": [4], "dense": 8})
    env = tool_env(STORAGE_EMULATOR_HOST=gcs_emulator, EDGE_VERTEX_LOCAL_OUTPUT="gs://edge-test/vertex-local")
    assert run_edge(project, "setup", "--target", "local", "--yes", env=env).returncode == 0
    result = run_edge(project, "train", "--backend", "vertex-local", "--offline", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((project / "vertex_job.json").read_text())
    assert record["output_uri"].startswith("gs://edge-test/vertex-local/fashion-mnist-train-")
    from vertex_edge.gcp.clients import storage_client
    from vertex_edge.gcp.files import Files

    files = Files(storage_client(env={"STORAGE_EMULATOR_HOST": gcs_emulator}))
    listed = files.listdir(record["output_uri"])
    assert {"model/model.onnx", "report/run.json", "checkpoints/checkpoint.json"} <= set(listed)
    assert any(name.startswith("logs/train/events.out.tfevents") for name in listed)
    args = record["spec"]["custom_job"]["job_spec"]["worker_pool_specs"][0]["container_spec"]["args"]
    assert args[args.index("--data-uri") + 1].startswith("gs://edge-test/vertex/staging/prepared/")
    assert (project / "models" / "fashion-mnist" / "model.onnx").is_file()
