"""Monitoring fixtures: a prepared model folder, a project with edge.yaml, records made by the real capture path."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import typer

from tests.monitoring.helpers import heldout, model_folder
from tests.synthetic import LABELS
from vertex_edge.artifact import ModelArtifact, digests
from vertex_edge.cli import monitor as monitor_cli
from vertex_edge.cli.app import new_app, run_command
from vertex_edge.cli.context import AppContext
from vertex_edge.config import EdgeConfig, StorageConfig, load_config, write_config
from vertex_edge.monitoring.capture import Capture, CaptureSettings
from vertex_edge.monitoring.layout import ModelMonitor
from vertex_edge.monitoring.prepare import prepare_model
from vertex_edge.monitoring.profile import PROFILE_FILE
from vertex_edge.monitoring.run import MonitoringPaths


@pytest.fixture(scope="session")
def prepared_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = model_folder(tmp_path_factory.mktemp("prepared") / "model", mirror=True)
    images, labels = heldout(2000, seed=11)
    prepare_model(folder, images, labels, class_names=LABELS, fpr=0.02)
    # as training does after the hook: the card lists the final files with their sha256
    artifact = ModelArtifact.read(folder)
    artifact.write_card(artifact.card.with_updates(artifacts=digests(folder, ("model.onnx", PROFILE_FILE))))
    return folder


@pytest.fixture
def project(tmp_path: Path, prepared_model: Path) -> Path:
    """A repository with edge.yaml (local target) and the prepared model in models/fashion-mnist."""
    repo = tmp_path / "repo"
    shutil.copytree(prepared_model, repo / "models" / "fashion-mnist")
    write_config(EdgeConfig(storage=StorageConfig(root=str(tmp_path / "store"))), repo / "edge.yaml")
    shutil.copy(Path(__file__).resolve().parents[2] / "params.yaml", repo / "params.yaml")
    return repo


def paths_of(repo: Path) -> MonitoringPaths:
    return MonitoringPaths.for_config(load_config(repo / "edge.yaml"), repo)


def capture_images(model_dir: Path, records: str, images: np.ndarray, *, version: str | None = None) -> list[str]:
    """Run the model on ``images`` one request per image and capture them as the server would."""
    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    card_version = version or "20261201T000000Z-aaaaaaaa"
    monitor = ModelMonitor.from_session(session, version=card_version, labels=tuple(LABELS))
    capture = Capture.from_settings(CaptureSettings(uri=records))
    packed = monitor.pack(session.run(list(monitor.output_names), {"image": images.astype(np.float32)}))
    ids = []
    for i in range(len(images)):
        rid = capture.request_id()
        capture.offer(rid, monitor, packed[i : i + 1])
        ids.append(rid)
    capture.stop()
    return ids


def edge(repo: Path, *args: str) -> int:
    """``edge.py --repo REPO ARGS`` with the monitor commands registered."""
    app = new_app("edge.py")

    @app.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = AppContext.create(repo, None)

    monitor_cli.register(app)
    return run_command(typer.main.get_command(app), list(args), prog_name="edge.py")
