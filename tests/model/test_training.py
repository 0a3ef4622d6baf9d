"""The trainer on a few hundred synthetic images: outputs, ONNX parity, Sacred records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vertex_edge.artifact import ModelArtifact
from vertex_edge.data.prepare import Split
from vertex_edge.params import AugmentParams, TrainParams
from vertex_edge.training.fit import split_train_val

FAST = TrainParams(epochs=1, batch_size=32, validation_split=0.2, early_stopping_patience=0)


def test_augmentation_trains_only_and_is_left_out_of_the_exported_copy() -> None:
    from vertex_edge.training.network import build_model, inference_copy

    params = TrainParams(
        augment=AugmentParams(flip=True, shift=2, erase=0.5),
        model={"filters": [4], "dense": 8, "mirror_average": False},
    )
    model = build_model(params.model, augment=params.augment, seed=1)
    images = np.zeros((16, 28, 28), np.float32)
    images[:, 8:20, 4:12] = 255.0  # off-centre, so a flip or a shift changes the picture

    assert {"augment_flip", "augment_shift", "augment_erase"} <= {layer.name for layer in model.layers}
    copy = inference_copy(model, params, image_shape=(28, 28), num_classes=10)
    assert not any(layer.name.startswith("augment_") for layer in copy.layers)
    served = np.asarray(copy(images, training=False))
    np.testing.assert_allclose(np.asarray(model(images, training=False)), served, atol=1e-6)
    trained_on = np.asarray(model(images, training=True))
    assert not np.allclose(trained_on, served, atol=1e-6)  # augmentation (and dropout) act in training


def test_mirror_average_serves_the_mean_over_the_mirror_image() -> None:
    from vertex_edge.training.network import build_model, inference_copy, predict

    params = TrainParams(model={"filters": [4], "dense": 8, "mirror_average": True})
    model = build_model(params.model, seed=3)
    images = np.random.default_rng(0).integers(0, 256, (8, 28, 28)).astype(np.float32)
    plain = np.asarray(model(images, training=False))
    mirrored = np.asarray(model(images[:, :, ::-1], training=False))
    assert not np.allclose(plain, mirrored, atol=1e-6)
    served = np.asarray(inference_copy(model, params, image_shape=(28, 28), num_classes=10)(images))
    np.testing.assert_allclose(served, (plain + mirrored) / 2, atol=1e-6)
    np.testing.assert_allclose(predict(model, images, params), served, atol=1e-6)


def test_split_is_seeded_and_honours_subset() -> None:
    split = Split(np.arange(1000 * 4, dtype=np.uint8).reshape(1000, 2, 2), (np.arange(1000) % 10).astype(np.uint8))
    params = TrainParams(subset=200, validation_split=0.1, seed=7)
    a, va = split_train_val(split, params)
    b, vb = split_train_val(split, params)
    assert len(a.labels) == 180 and len(va.labels) == 20
    np.testing.assert_array_equal(a.labels, b.labels)


def test_the_sacred_heartbeat_interval_is_applied() -> None:
    from sacred import Experiment

    from vertex_edge.training.run import BEAT_INTERVAL_S, RUN_OPTIONS

    ex = Experiment("beat", save_git_info=False, interactive=True)
    ex.main(lambda _run: _run.beat_interval)
    assert ex.run(options={**RUN_OPTIONS, "--beat-interval": 2.5}).result == 2.5  # the flag is the one Sacred reads
    assert ex.run(options=RUN_OPTIONS).result == BEAT_INTERVAL_S


@pytest.mark.slow
def test_tracked_training_writes_outputs_and_sacred_run(prepared: Path, tmp_path: Path) -> None:
    from vertex_edge.gitinfo import GitInfo
    from vertex_edge.tracking.runs import FileExperimentStore, summarize
    from vertex_edge.tracking.target import TrackingTarget
    from vertex_edge.training.run import LocalBackend, TrainOutputs, run_training

    outputs = TrainOutputs(
        tmp_path / "model", tmp_path / "metrics" / "train.json", tmp_path / "reports" / "history.csv"
    )
    lines: list[str] = []
    artifact = run_training(
        backend=LocalBackend(prepared, "fashion-mnist", GitInfo(commit="abc", dirty=False), ood_fpr=0.02),
        data_dir=prepared,
        params=FAST.model_copy(update={"epochs": 2, "augment": AugmentParams(flip=True, shift=2)}),
        outputs=outputs,
        tracking=TrackingTarget("file", path=tmp_path / "runs"),
        model_name="fashion-mnist",
        repo=tmp_path,
        echo=lines.append,
        dvc={"experiment": "exp-1a2b3", "baseline": "c0ffee", "queued": True, "stage": "train"},
    )
    card = artifact.card
    # 60 held-out images are too few for the reference profile: a servable model without it
    # (tests/model/test_export.py has the model with one)
    assert sorted(p.name for p in outputs.model_dir.iterdir()) == ["model.keras", "model.onnx", "model_card.json"]
    assert card.monitor is None
    assert card.labels[9] == "Ankle boot" and len(card.labels) == 10
    assert card.onnx_max_abs_diff is not None and card.onnx_max_abs_diff <= 1e-4
    assert card.sacred_run_id == "1"
    assert card.git.commit == "abc"
    ModelArtifact.read(outputs.model_dir).verify()  # every file matches its sha256
    assert json.loads((outputs.model_dir / "model_card.json").read_text()) == card.model_dump(mode="json")
    assert json.loads(outputs.metrics.read_text()) == {
        "epochs": 2, "seconds": round(card.metrics.train_seconds), "data": card.data_version[:8], "sacred_run_id": "1",
    }  # fmt: skip
    assert outputs.history.read_text().splitlines()[0] == "epoch,loss,accuracy,val_loss,val_accuracy"
    assert len(outputs.history.read_text().splitlines()) == 3
    assert any(line.startswith("epoch 1/2") for line in lines)

    run = FileExperimentStore(tmp_path / "runs").get_run("1")
    assert run["status"] == "COMPLETED"
    assert run["config"]["epochs"] == 2
    assert run["info"]["data_version"] == json.loads((prepared / "meta.json").read_text())["data_version"]
    assert run["info"]["model"]["sha256"] == card.onnx_sha256
    assert set(run["metrics"]) >= {"loss", "accuracy", "val_loss", "val_accuracy", "test_accuracy"}
    assert run["metrics"]["loss"]["steps"] == [1, 2]
    assert "git" in run["info"] and "host" in run["info"] and run["info"]["backend"] == "local"
    # joined to DVC both ways: the run names the experiment, train.json names the run
    assert run["info"]["dvc"] == {"experiment": "exp-1a2b3", "baseline": "c0ffee", "queued": True, "stage": "train"}
    assert run["info"]["pid"] > 0 and run["heartbeat"]
    # the history and the card are attached to the run
    assert run["artifacts"] == ["train_history.csv", "model_card.json"]
    run_dir = tmp_path / "runs" / "1"
    assert (run_dir / "train_history.csv").read_text() == outputs.history.read_text()
    assert json.loads((run_dir / "model_card.json").read_text())["sacred_run_id"] == "1"
    assert summarize(run)["test_accuracy"] == pytest.approx(card.metrics.test_accuracy, abs=1e-6)

    import onnxruntime as ort

    from vertex_edge.data.prepare import load_npz

    test = load_npz(prepared / "test.npz")
    session = ort.InferenceSession(str(outputs.model_dir / "model.onnx"))
    probs = session.run(None, {card.input.name: test.images[:8].astype(np.float32)})[0]
    assert probs.shape == (8, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_sigterm_marks_run_interrupted_and_writes_no_model(prepared: Path, tmp_path: Path) -> None:
    import yaml

    params = tmp_path / "params.yaml"  # every key set (the stage refuses a partial params.yaml)
    train = TrainParams(epochs=200, batch_size=16, early_stopping_patience=0).model_dump(mode="json")
    params.write_text(yaml.safe_dump({"train": train, "monitor": {"ood": {"fpr": 0.02}}}))
    env = dict(os.environ, EDGE_EXPERIMENTS_DIR=str(tmp_path / "runs"), TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env.pop("EDGE_OFFLINE", None)
    env.pop("EDGE_MONGODB_URL", None)
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "steps.train",
            "--data-dir",
            str(prepared),
            "--params",
            str(params),
            "--model-dir",
            str(tmp_path / "model"),
            "--metrics",
            str(tmp_path / "m.json"),
            "--history",
            str(tmp_path / "h.csv"),
            "--config",
            str(tmp_path / "none.yaml"),
        ],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if line.startswith("epoch 1/") or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, rest
    run = json.loads((tmp_path / "runs" / "1" / "run.json").read_text())
    assert run["status"] == "INTERRUPTED"
    assert not (tmp_path / "model").exists()
    assert not list(tmp_path.glob(".model*"))
