"""The real local pipeline end to end on a tiny synthetic dataset, as a user runs it:
`edge.py setup --target local --yes`, `edge.py data seed` (from a mirror), `dvc repro` - and what a
failed stage, a failing quality gate and a killed `dvc` leave behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import git, run_edge, tool_env
from tests.synthetic import make_dataset

pytestmark = [pytest.mark.slow, pytest.mark.integration]
#: what `make run` tells the user to commit after the first run
COMMIT = ("edge.yaml", "dvc.lock", "data", "metrics", "models", "reports")


def dvc(project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=project, env=env, capture_output=True, text=True, timeout=900
    )


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def set_params(project: Path, min_accuracy: float = 0.0, **train: object) -> None:
    """Update params.yaml's train section (nested sections merged: every key stays set)."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"] = _merge(params["train"], train)
    params["evaluate"]["min_accuracy"] = min_accuracy
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


# Tiny data needs a tiny network: the default one (four blocks) gets about 9 steps an epoch from 270
# images and is still at chance after 3 epochs; two blocks learn the synthetic bars in 2-3.
TINY_TRAIN: dict[str, object] = {"epochs": 1, "batch_size": 32, "model": {"filters": [16, 32]}}


def seeded(project: Path, tmp_path: Path, *, min_accuracy: float = 0.0, **train: object) -> dict[str, str]:
    """Tiny data and params committed, `edge.py setup` and `edge.py data seed` done; the env to use."""
    mirror = tmp_path / "mirror"
    manifest = make_dataset(mirror, n_train=300, n_test=100)
    (project / "data" / "fashion-mnist.yaml").write_text(manifest.read_text())
    set_params(project, min_accuracy, **{**TINY_TRAIN, **train})
    git(project, "commit", "-qam", "tiny data and params")
    env = tool_env(EDGE_DATA_MIRROR=str(mirror))
    assert run_edge(project, "setup", "--target", "local", "--yes", env=env).returncode == 0
    seed = run_edge(project, "data", "seed", env=env)
    assert seed.returncode == 0, seed.stderr
    return env


def commit_all(project: Path, message: str) -> None:
    git(project, "add", *COMMIT, "params.yaml")
    git(project, "commit", "-qm", message)


def digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def outputs(project: Path) -> dict[str, str]:
    files = (
        "models/fashion-mnist/model.onnx",
        "metrics/train.json",
        "reports/train_history.csv",
        "metrics/evaluate.json",
    )
    return {f: digest(project / f) for f in files}


def test_local_pipeline_end_to_end(project: Path, tmp_path: Path) -> None:
    env = seeded(project, tmp_path)
    for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert (project / "data" / "fashion-mnist" / f"{name}.dvc").exists()
    again = run_edge(project, "data", "seed", env=env)
    assert "already present" in again.stdout and "up to date" in again.stdout.lower()

    first = dvc(project, "repro", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    for stage in ("prepare", "check", "train", "evaluate"):
        assert f"Running stage '{stage}'" in first.stdout
    assert "experiment id: 1" in first.stdout and "attached confusion_matrix.png" in first.stdout
    assert "oneDNN" not in first.stdout + first.stderr and "absl::InitializeLog" not in first.stdout + first.stderr
    model_dir = project / "models" / "fashion-mnist"
    # 30 held-out images are too few to calibrate the OOD flag (at least 300): the model is exported
    # without its monitor output and reference profile, still servable, and the stage says so
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.keras", "model.onnx", "model_card.json"]
    assert "only 30 images are held out" in first.stdout + first.stderr
    card = json.loads((model_dir / "model_card.json").read_text())
    assert card["monitor"] is None and set(card["artifacts"]) == {"model.keras", "model.onnx"}
    assert card["git"]["commit"] == git(project, "rev-parse", "HEAD").strip()
    assert card["sacred_run_id"] == "1"
    assert json.loads((project / "metrics" / "train.json").read_text())["sacred_run_id"] == "1"
    evaluation = json.loads((project / "reports" / "evaluation.json").read_text())
    assert evaluation["model_sha256"] == card["artifacts"]["model.onnx"]["sha256"]
    assert set(evaluation["per_class"]) == set(card["labels"])
    data_report = json.loads((project / "reports" / "data.json").read_text())
    assert data_report["train"]["count"] == 300 and data_report["data_version"] == card["data_version"]
    assert (project / "reports" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert len((project / "reports" / "confusion.csv").read_text().splitlines()) == 101
    run_dir = project / ".edge" / "experiments" / "1"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "COMPLETED" and run["heartbeat"]
    assert run["artifacts"] == [
        "train_history.csv",
        "model_card.json",
        "confusion_matrix.png",
        "evaluate.json",
        "evaluation.json",
    ]
    # the run keeps what the terminal showed (experiments ui and Omniboard display it)
    assert "epoch 1/" in (run_dir / "cout.txt").read_text()

    metrics = dvc(project, "metrics", "show", env=env)
    lines = metrics.stdout.splitlines()
    assert lines[0].split() == ["Path", "accuracy", "data", "epochs", "gate", "loss", "margin", "sacred_run_id",
                                "seconds", "threshold"]  # fmt: skip
    assert max(len(line) for line in lines) <= 120

    commit_all(project, "first run")
    second = dvc(project, "repro", env=env)
    assert second.returncode == 0
    assert "Running stage" not in second.stdout
    assert not (project / ".edge" / "experiments" / "2").exists()
    assert git(project, "status", "--porcelain") == ""

    set_params(project, epochs=2)
    third = dvc(project, "repro", env=env)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "Running stage 'prepare'" not in third.stdout
    assert "Running stage 'train'" in third.stdout and "Running stage 'evaluate'" in third.stdout
    assert json.loads((project / ".edge" / "experiments" / "2" / "run.json").read_text())["status"] == "COMPLETED"

    listing = run_edge(project, "experiments", "list", env=env)
    assert listing.returncode == 0 and "COMPLETED" in listing.stdout
    shown = run_edge(project, "experiments", "show", "2", env=env)
    assert shown.returncode == 0 and card["data_version"][:8] in shown.stdout

    # the quality gate: recorded and said plainly, the pipeline goes on; `python -m steps.gate` fails
    accuracy = json.loads((project / "metrics" / "evaluate.json").read_text())["accuracy"]
    set_params(project, 1.0, epochs=2)
    gated = dvc(project, "repro", env=env)
    assert gated.returncode == 0, gated.stdout + gated.stderr
    assert f"QUALITY GATE FAILED: test accuracy {accuracy:.4f} is below evaluate.min_accuracy 1.0000" in gated.stdout
    assert json.loads((project / "metrics" / "evaluate.json").read_text())["gate"] is False
    commit_all(project, "a strict gate")
    gate = subprocess.run([sys.executable, "-m", "steps.gate"], cwd=project, env=env, capture_output=True, text=True)
    assert gate.returncode == 1 and "quality gate failed" in gate.stderr and "Traceback" not in gate.stderr


def test_a_failed_stage_loses_nothing(project: Path, tmp_path: Path) -> None:
    env = seeded(project, tmp_path)
    assert dvc(project, "repro", env=env).returncode == 0
    commit_all(project, "first run")
    before = outputs(project)

    # a bad param fails the check stage, before DVC deletes train's outputs
    set_params(project, epochs=0)
    bad = dvc(project, "repro", env=env)
    assert bad.returncode != 0 and "train.epochs" in bad.stderr
    assert "Running stage 'train'" not in bad.stdout
    assert outputs(project) == before

    # an empty or partial params.yaml names what is missing (no silent code defaults)
    (project / "params.yaml").write_text("")
    empty = dvc(project, "repro", env=env)
    assert empty.returncode != 0 and "are missing from 'params.yaml'" in empty.stderr  # DVC's own check
    git(project, "checkout", "--", "params.yaml")
    partial = yaml.safe_load((project / "params.yaml").read_text())
    del partial["train"]["learning_rate"], partial["train"]["model"]["dense"]
    (project / "params.yaml").write_text(yaml.safe_dump(partial))
    missing = dvc(project, "repro", env=env)
    assert missing.returncode != 0 and "does not set train.learning_rate, train.model.dense" in missing.stderr
    assert outputs(project) == before
    git(project, "checkout", "--", "params.yaml")

    # a failure once train runs (MongoDB unreachable): the previous outputs are checked out again
    set_params(project, epochs=2)
    (project / "models" / ".fashion-mnist.k1l2.tmp").mkdir()  # left by a kill during an export
    assert "fashion-mnist.k1l2" not in git(project, "status", "--porcelain", "--untracked-files=all")
    down = dvc(project, "repro", env={**env, "EDGE_MONGODB_URL": "mongodb://127.0.0.1:9"})
    assert down.returncode != 0 and "MongoDB at mongodb://127.0.0.1:9 is not reachable" in down.stderr
    assert "'dvc checkout train' restored them" in down.stderr
    assert "removed .fashion-mnist.k1l2.tmp, left behind by an interrupted run" in down.stdout
    assert not list((project / "models").glob(".fashion-mnist.*"))
    assert outputs(project) == before
    status = dvc(project, "status", env=env).stdout
    assert "train:" in status and "modified" in status  # still to do, nothing lost

    again = dvc(project, "repro", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert outputs(project) != before


def test_killing_dvc_stops_its_training(project: Path, tmp_path: Path) -> None:
    """`kill -9` of the dvc parent: steps.train notices, records INTERRUPTED and stops; the next
    `dvc repro` does not run beside it. SHELL=/bin/sh (DVC's choice where SHELL is unset, as in CI):
    dash keeps itself between DVC and the training, and outlives DVC."""
    env = seeded(project, tmp_path, epochs=300, batch_size=4, early_stopping_patience=0)
    log = (tmp_path / "repro.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=project,
                            env={**env, "PYTHONUNBUFFERED": "1", "SHELL": "/bin/sh"},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while "epoch 1/300" not in (tmp_path / "repro.log").read_text():
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "repro.log").read_text()
        time.sleep(0.5)
    stage = next(p for p in _children(proc.pid) if "steps.train" in p[1])
    trainer = next((p for p in _children(stage[0]) if "steps.train" in p[1]), stage)[0]  # below the shell
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 60
    while _alive(trainer):
        assert time.monotonic() < deadline, (
            "steps.train kept running after its dvc parent was killed\n" + (tmp_path / "repro.log").read_text()[-3000:]
        )
        time.sleep(0.2)
    text = (tmp_path / "repro.log").read_text()
    assert "training interrupted: the run is recorded as INTERRUPTED" in text
    assert json.loads((project / ".edge" / "experiments" / "1" / "run.json").read_text())["status"] == "INTERRUPTED"
    assert not (project / "models" / ".fashion-mnist.train.lock").exists()


def _children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append((int(entry.name), cmd))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
