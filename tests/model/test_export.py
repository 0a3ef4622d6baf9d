"""The ONE export makes the model monitorable: the monitor outputs in model.onnx and the reference
profile of the held-out validation split beside it, both in the card; without held-out images
the model is still exported and servable, and a warning says what is missing."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from tests.synthetic import LABELS
from vertex_edge.artifact import ModelArtifact
from vertex_edge.data.prepare import PreparedMeta, Split
from vertex_edge.gitinfo import GitInfo
from vertex_edge.params import TrainParams

SMALL = TrainParams(
    epochs=1, batch_size=64, validation_split=0.5, early_stopping_patience=0, model={"filters": [4, 8], "dense": 16}
)


def data(n: int, seed: int) -> Split:
    from tests.synthetic import synthetic_images

    labels = np.random.default_rng(seed).integers(0, 10, size=n).astype(np.uint8)
    return Split(synthetic_images(labels, seed), labels)


def export(tmp_path: Path, params: TrainParams, n_train: int) -> ModelArtifact:
    from vertex_edge.training.export import save_model
    from vertex_edge.training.fit import train

    test = data(100, seed=1)
    result = train(data(n_train, seed=0), test, params, num_classes=10)
    meta = PreparedMeta(labels=LABELS, image_shape=[28, 28], data_version="md5:" + "0" * 32)
    folder = tmp_path / "model"
    folder.mkdir()
    return save_model(
        result, folder, meta=meta, params=params, model_name="fashion-mnist", git=GitInfo(),
        sample=test.images[:64].astype(np.float32), ood_fpr=0.05,
    )  # fmt: skip


@pytest.mark.slow
def test_the_exported_model_has_its_monitor_outputs_and_reference_profile(tmp_path: Path) -> None:
    import onnxruntime as ort

    from vertex_edge.monitoring.layout import ModelMonitor, layout_columns
    from vertex_edge.monitoring.profile import PROFILE_FILE, ReferenceProfile

    artifact = export(tmp_path, SMALL, n_train=800)
    card = artifact.card
    assert sorted(p.name for p in artifact.folder.iterdir()) == [
        "model.keras", "model.onnx", "model_card.json", PROFILE_FILE
    ]  # fmt: skip
    # the card takes the sha256 of the final files (after the monitor outputs were added)
    assert set(card.artifacts) == {"model.onnx", "model.keras", PROFILE_FILE}
    ModelArtifact.read(artifact.folder).verify()
    profile = ReferenceProfile.read(artifact.folder / PROFILE_FILE)
    assert profile.model_sha256 == card.onnx_sha256
    assert profile.meta["heldout"]["images"] == 400  # the validation split, never trained on

    monitor = card.monitor
    assert monitor is not None and monitor.profile == PROFILE_FILE
    assert monitor.heldout_images == 400 and monitor.ood_fpr == 0.05
    assert monitor.ood_threshold == pytest.approx(profile.detector.threshold, abs=1e-6)
    assert monitor.heldout_accuracy == pytest.approx(profile.accuracy, abs=1e-6)
    columns = list(layout_columns(int(profile.meta["components"])))
    assert [(o.name, o.shape, o.columns) for o in monitor.outputs] == [
        ("embedding", [None, 16], None), ("monitor", [None, len(columns)], columns)
    ]  # fmt: skip

    session = ort.InferenceSession(str(artifact.onnx_path), providers=["CPUExecutionProvider"])
    served = ModelMonitor.from_session(session, version=card.version, labels=tuple(card.labels))
    assert served.has_ood and served.threshold == pytest.approx(monitor.ood_threshold, abs=1e-6)
    assert session.get_outputs()[0].shape[1] == 10  # output 0 is still the probabilities


@pytest.mark.slow
def test_without_held_out_images_the_model_is_exported_without_monitoring(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from vertex_edge.monitoring.layout import ModelMonitor
    from vertex_edge.serving.model import load_model_dir

    params = SMALL.model_copy(update={"validation_split": 0.0})
    with caplog.at_level(logging.WARNING):
        artifact = export(tmp_path, params, n_train=200)
    assert "train.validation_split is 0" in caplog.text and "without its monitor output" in caplog.text
    assert sorted(p.name for p in artifact.folder.iterdir()) == ["model.keras", "model.onnx", "model_card.json"]
    assert artifact.card.monitor is None and set(artifact.card.artifacts) == {"model.onnx", "model.keras"}
    model = load_model_dir(artifact.folder, threads=1)  # still servable
    assert model.predict(np.zeros((2, 28, 28), np.float32)).shape == (2, 10)
    monitor = ModelMonitor.from_session(model.session, version=model.version, labels=model.labels)
    assert not monitor.has_ood
