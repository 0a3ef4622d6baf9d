"""The training hook: the monitor output in model.onnx and the reference profile beside it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tests.monitoring.helpers import dense_model, heldout, model_folder
from tests.synthetic import LABELS
from vertex_edge.errors import DataError
from vertex_edge.monitoring.features import FEATURES, summarize
from vertex_edge.monitoring.graph import attach_monitor
from vertex_edge.monitoring.layout import LAYOUT_KEY, MONITOR_OUTPUT, ModelMonitor, layout_columns
from vertex_edge.monitoring.prepare import prepare_model
from vertex_edge.monitoring.profile import PROFILE_FILE, ReferenceProfile, run_model


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ReferenceProfile]:
    folder = model_folder(tmp_path_factory.mktemp("model"), mirror=True)
    images, labels = heldout(1200)
    return folder, prepare_model(folder, images, labels, class_names=LABELS, fpr=0.05)


def test_the_model_gets_a_monitor_output_and_keeps_its_probabilities(prepared) -> None:  # noqa: ANN001
    folder, profile = prepared
    images, _ = heldout(100, seed=5)
    data = (folder / "model.onnx").read_bytes()
    out = run_model(data, images)
    np.testing.assert_allclose(
        out["probabilities"], run_model(dense_model(mirror=True), images)["probabilities"], atol=1e-6
    )
    monitor = out[MONITOR_OUTPUT]
    columns = layout_columns(profile.meta["components"])
    assert monitor.shape == (100, len(columns))
    np.testing.assert_allclose(monitor[:, 2 : 2 + len(FEATURES)], summarize(images), rtol=1e-4, atol=1e-3)
    scores, flags = profile.detector.score(images, summarize(images), out["embedding"])
    np.testing.assert_allclose(monitor[:, 0], scores, atol=1e-3)
    assert ((monitor[:, 1] > 0.5) == flags).all()
    assert profile.model_sha256 == hashlib.sha256(data).hexdigest()


def test_the_server_reads_the_columns_from_the_model_itself(prepared) -> None:  # noqa: ANN001
    import onnxruntime as ort

    folder, profile = prepared
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map[LAYOUT_KEY])
    assert meta["threshold"] == pytest.approx(profile.detector.threshold)
    monitor = ModelMonitor.from_session(session, version="v", labels=tuple(LABELS))
    assert monitor.has_ood and monitor.columns[:2] == ("ood_score", "ood_flag")
    images, _ = heldout(3, seed=6)
    packed = monitor.pack(session.run(list(monitor.output_names), {"image": images}))
    assert packed.shape == (3, 10 + len(monitor.columns))
    fields = monitor.prediction_fields(packed[0])
    assert set(fields["ood"]) == {"score", "flag"} and isinstance(fields["ood"]["flag"], bool)


def test_the_profile_round_trips(prepared) -> None:  # noqa: ANN001
    folder, profile = prepared
    again = ReferenceProfile.read(folder / PROFILE_FILE)
    assert again.meta == profile.meta
    assert len(again.class_id) == 600 == profile.meta["heldout"]["reference_rows"]  # scale + calibrate parts
    np.testing.assert_array_equal(again.features, profile.features)
    assert again.detector.threshold == profile.detector.threshold
    assert again.accuracy == pytest.approx(1.0)
    assert again.class_share().sum() == pytest.approx(1.0)
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx", "model_card.json", PROFILE_FILE]


def test_a_model_without_monitor_output_passes_probabilities_through(tmp_path: Path) -> None:
    import onnxruntime as ort

    (tmp_path / "m.onnx").write_bytes(dense_model())
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    monitor = ModelMonitor.from_session(session, version="v", labels=tuple(LABELS))
    assert monitor.output_names == ("probabilities",) and not monitor.has_ood
    assert monitor.prediction_fields(np.zeros(10, np.float32)) == {}


def test_features_only_without_a_detector() -> None:
    images, _ = heldout(20)
    out = run_model(attach_monitor(dense_model(), None, components=0), images)[MONITOR_OUTPUT]
    assert (out[:, :2] == 0).all()
    np.testing.assert_allclose(out[:, 2:], summarize(images), rtol=1e-4, atol=1e-3)


def test_profile_files_of_another_schema_or_missing_are_refused(tmp_path: Path, prepared) -> None:  # noqa: ANN001
    with pytest.raises(DataError, match="no reference profile") as info:
        ReferenceProfile.read(tmp_path / PROFILE_FILE)
    assert "retrain" in (info.value.hint or "")
    _, profile = prepared
    old = ReferenceProfile(**{**profile.__dict__, "meta": {**profile.meta, "schema": 0}})
    with pytest.raises(DataError, match="schema 0"):
        ReferenceProfile.read("old.npz", old.to_bytes())
    with pytest.raises(DataError, match="not a reference profile"):
        ReferenceProfile.read("junk.npz", b"junk")
