"""The real local pipeline end to end on a tiny synthetic dataset, as a user runs it:
`edge.py setup --target local --yes`, `edge.py data seed` (from a mirror), `dvc repro`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import git, run_edge, tool_env
from tests.synthetic import make_dataset

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def dvc(project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )


def set_params(project: Path, **train: object) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"].update(train)
    params["evaluate"]["min_accuracy"] = 0.0
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_local_pipeline_end_to_end(project: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    manifest = make_dataset(mirror, n_train=300, n_test=100)
    (project / "data" / "fashion-mnist.yaml").write_text(manifest.read_text())
    set_params(project, epochs=1, batch_size=32)
    git(project, "commit", "-qam", "tiny data and params")
    env = tool_env(EDGE_DATA_MIRROR=str(mirror))

    setup = run_edge(project, "setup", "--target", "local", "--yes", env=env)
    assert setup.returncode == 0, setup.stderr
    seed = run_edge(project, "data", "seed", env=env)
    assert seed.returncode == 0, seed.stderr
    assert "4 files pushed" in seed.stdout
    for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert (project / "data" / "fashion-mnist" / f"{name}.dvc").exists()
    again = run_edge(project, "data", "seed", env=env)
    assert "already present" in again.stdout and "up to date" in again.stdout.lower()

    first = dvc(project, "repro", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    for stage in ("prepare", "train", "evaluate"):
        assert f"Running stage '{stage}'" in first.stdout
    assert "experiment id: 1" in first.stdout
    model_dir = project / "models" / "fashion-mnist"
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.keras", "model.onnx", "model_card.json"]
    card = json.loads((model_dir / "model_card.json").read_text())
    assert card["git"]["commit"] == git(project, "rev-parse", "HEAD").strip()
    assert card["sacred_run_id"] == "1"
    evaluation = json.loads((project / "metrics" / "evaluate.json").read_text())
    assert 0.0 <= evaluation["accuracy"] <= 1.0 and set(evaluation["per_class"]) == set(card["labels"])
    data_report = json.loads((project / "metrics" / "data.json").read_text())
    assert data_report["train"]["count"] == 300 and data_report["data_version"] == card["data_version"]
    assert (project / "reports" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert len((project / "reports" / "confusion.csv").read_text().splitlines()) == 101
    run = json.loads((project / ".edge" / "experiments" / "1" / "run.json").read_text())
    assert run["status"] == "COMPLETED"

    metrics = dvc(project, "metrics", "show", env=env)
    assert "accuracy" in metrics.stdout

    second = dvc(project, "repro", env=env)
    assert second.returncode == 0
    assert "Running stage" not in second.stdout
    assert not (project / ".edge" / "experiments" / "2").exists()

    set_params(project, epochs=2, batch_size=32)
    third = dvc(project, "repro", env=env)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "Running stage 'prepare'" not in third.stdout
    assert "Running stage 'train'" in third.stdout and "Running stage 'evaluate'" in third.stdout
    assert json.loads((project / ".edge" / "experiments" / "2" / "run.json").read_text())["status"] == "COMPLETED"

    listing = run_edge(project, "experiments", "list", env=env)
    assert listing.returncode == 0 and "COMPLETED" in listing.stdout
    shown = run_edge(project, "experiments", "show", "2", env=env)
    assert shown.returncode == 0 and card["data_version"][:8] in shown.stdout

    # the quality gate: a model below evaluate.min_accuracy fails the stage with the figures
    accuracy = json.loads((project / "metrics" / "evaluate.json").read_text())["accuracy"]
    if accuracy < 1.0:
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["evaluate"]["min_accuracy"] = 1.0
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        gated = dvc(project, "repro", env=env)
        assert gated.returncode != 0
        assert f"quality gate failed: test accuracy {accuracy:.4f} is below the quality gate evaluate.min_accuracy 1.0000" in (
            gated.stdout + gated.stderr
        )
