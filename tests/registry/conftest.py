"""Registry fixtures: a throw-away project with edge.yaml, params.yaml, a trained (tiny) model
and its evaluation record, plus helpers to run deploy-vertex.py and edge.py in-process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.serving.tiny_model import write_model_dir


@pytest.fixture
def deploy_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = tmp_path / "project"
    repo.mkdir()
    (repo / "edge.yaml").write_text("version: 1\ntarget: local\nstorage:\n  root: .edge\n")
    (repo / "params.yaml").write_text("train:\n  epochs: 1\nevaluate:\n  min_accuracy: 0.9\ndeploy:\n  max_regression: 0.01\n")
    train(repo, version="v1-aaaa", accuracy=0.93)
    for var in ("EDGE_REPO", "EDGE_CONFIG", "AIP_HTTP_PORT", "AIP_PREDICT_ROUTE", "AIP_HEALTH_ROUTE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(repo)
    return repo


def train(
    repo: Path, *, version: str, accuracy: float, bias_class: int | None = None, evaluated: float | None = None
) -> Path:
    """What `dvc repro` leaves behind: models/fashion-mnist and reports/evaluation.json (the evaluate
    stage's record of that model, by sha256; ``evaluated`` is its accuracy, default ``accuracy``)."""
    folder = write_model_dir(repo / "models" / "fashion-mnist", version=version, accuracy=accuracy, bias_class=bias_class)
    card = json.loads((folder / "model_card.json").read_text())
    (repo / "reports").mkdir(exist_ok=True)
    record = {
        "model_version": version, "model_sha256": card["artifacts"]["model.onnx"]["sha256"],
        "accuracy": accuracy if evaluated is None else evaluated, "log_loss": 0.3, "count": 100,
        "data_version": card["data_version"], "sacred_run_id": card["sacred_run_id"],
        "gate": {"threshold": 0.9, "passed": True}, "per_class": {"Trouser": {"precision": 1.0, "recall": 1.0}},
    }  # fmt: skip
    (repo / "reports" / "evaluation.json").write_text(json.dumps(record))
    return folder


@pytest.fixture
def deploy_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    from vertex_edge.cli.deploy import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def edge_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    from vertex_edge.cli.edge import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
