"""The trainer entrypoint as Vertex AI runs it: AIP_* folders, checkpoints, resume after a kill."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.vertex.conftest import TINY_PARAMS, aip_env, prepare_synthetic, run_task, task_argv

CARD_KEYS = {"name", "version", "created", "labels", "input", "params", "data_version", "git", "metrics", "artifacts",
             "sacred_run_id"}  # fmt: skip


@pytest.mark.slow  # runs a subprocess
def test_missing_model_dir_and_bad_params_are_usage_errors(prepared: Path) -> None:
    env = aip_env("/unused")
    env.pop("AIP_MODEL_DIR")
    result = subprocess.run(task_argv(str(prepared)), cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "AIP_MODEL_DIR is not set" in result.stdout
    bad = subprocess.run(
        [*task_argv(str(prepared))[:5], "--ood-fpr", "0.02", "--params-json", '{"epochs": 0}'], cwd=REPO, env=aip_env("/unused"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "--params-json is invalid: epochs" in bad.stdout


@pytest.mark.slow
def test_task_writes_the_model_contract_into_the_aip_folders(tmp_path: Path) -> None:
    # 400 held-out images: enough for the reference profile and the OOD flag (at least 300)
    prepared = prepare_synthetic(tmp_path / "data", n_train=800)
    base = tmp_path / "job"
    result = run_task(str(prepared), str(base), params={**TINY_PARAMS, "validation_split": 0.5})
    assert result.returncode == 0, result.stdout + result.stderr
    model = base / "model"
    assert sorted(p.name for p in model.iterdir()) == [
        "model.keras", "model.onnx", "model_card.json", "reference_profile.npz"
    ]  # fmt: skip
    card = json.loads((model / "model_card.json").read_text())
    assert CARD_KEYS <= set(card)
    # exported once, here: the card lists the profile with its sha256, and the OOD flag's calibration
    assert set(card["artifacts"]) == {"model.keras", "model.onnx", "reference_profile.npz"}
    assert card["monitor"]["heldout_images"] == 400 and card["monitor"]["ood_fpr"] == 0.02
    assert [o["name"] for o in card["monitor"]["outputs"]] == ["embedding", "monitor"]
    assert "OOD threshold" in result.stdout
    assert card["git"] == {"commit": "3f2a9c1d" + "0" * 32, "dirty": False}
    assert card["sacred_run_id"] is None  # the submitting side records the Sacred run
    assert card["training"]["replicas"] == 1
    import onnxruntime as ort

    session = ort.InferenceSession(str(model / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [28, 28]
    assert [o.name for o in session.get_outputs()][1:] == ["embedding", "monitor"]
    report = json.loads((base / "report" / "run.json").read_text())
    assert report["epochs_run"] == 2 and len(report["history"]) == 2
    assert json.loads((base / "report" / "train.json").read_text()) == card["metrics"]
    assert (base / "checkpoints" / "checkpoint.json").is_file()
    assert (base / "checkpoints" / "epoch-0002.keras").is_file()
    events = list((base / "logs").rglob("events.out.tfevents.*"))
    assert {p.parent.name for p in events} == {"train", "validation"}
    assert "epoch 2/2" in result.stdout


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_checkpoint(prepared: Path, tmp_path: Path) -> None:
    base = tmp_path / "job"
    params = {**TINY_PARAMS, "epochs": 12}
    index = base / "checkpoints" / "checkpoint.json"
    proc = subprocess.Popen(task_argv(str(prepared), params), cwd=REPO, env=aip_env(str(base)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if index.is_file() and json.loads(index.read_text())["epoch"] >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)  # like a VM that disappears: no cleanup at all
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    killed_at = json.loads(index.read_text())["epoch"]
    assert 2 <= killed_at < 12
    assert not (base / "model").exists()

    result = run_task(str(prepared), str(base), params=params)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"resuming from the checkpoint of epoch {killed_at}" in result.stdout
    assert "restored the optimizer state" in result.stdout
    assert f"epoch {killed_at}/12" not in result.stdout  # finished epochs are not trained again
    assert f"epoch {killed_at + 1}/12" in result.stdout
    report = json.loads((base / "report" / "run.json").read_text())
    assert report["resumed_from_epoch"] == killed_at
    with open(base / "report" / "history.csv") as fh:
        assert [int(row["epoch"]) for row in csv.DictReader(fh)] == list(range(1, 13))
    assert (base / "model" / "model.onnx").is_file()
