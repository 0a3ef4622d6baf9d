"""The README's team workflow, step by step, with two clones sharing one git remote and one DVC
remote: after the first run, commit and push; a teammate's clone that runs `dvc pull` then
`dvc repro` does nothing and has the same model; an experiment is shared with `dvc exp push`."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git, run_edge, tool_env
from tests.integration.test_pipeline import COMMIT, TINY_TRAIN, dvc, set_params
from tests.synthetic import make_dataset

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_clones_share_one_dvc_remote(project: Path, tmp_path: Path) -> None:
    shared = tmp_path / "team-storage"  # e.g. a mounted team folder: DVC store, Sacred runs, registry
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    mirror = tmp_path / "mirror"
    (project / "data" / "fashion-mnist.yaml").write_text(make_dataset(mirror, n_train=300, n_test=100).read_text())
    set_params(project, 0.0, **TINY_TRAIN)
    git(project, "commit", "-qam", "tiny data and params")
    env = tool_env(EDGE_DATA_MIRROR=str(mirror))

    # Alice: the first run, then commit and push (README "Team workflow")
    assert run_edge(project, "setup", "--target", "local", "--storage-root", str(shared), "--yes", env=env).returncode == 0
    assert run_edge(project, "data", "seed", env=env).returncode == 0
    first = dvc(project, "repro", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    git(project, "add", *COMMIT)
    git(project, "commit", "-qm", "first run: dvc.lock, data .dvc files, edge.yaml")
    assert git(project, "status", "--porcelain") == ""
    git(project, "remote", "add", "origin", str(origin))
    git(project, "push", "-q", "origin", "HEAD:main")
    assert dvc(project, "push", env=env).returncode == 0

    # Bob: clone, setup (reads the committed edge.yaml), dvc pull, dvc repro runs nothing
    bob = tmp_path / "bob"
    subprocess.run(["git", "clone", "-q", "-b", "main", str(origin), str(bob)], check=True)
    setup = run_edge(bob, "setup", "--yes", env=env)
    assert setup.returncode == 0, setup.stderr
    pulled = dvc(bob, "pull", env=env)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    repro = dvc(bob, "repro", env=env)
    assert repro.returncode == 0, repro.stdout + repro.stderr
    assert "Running stage" not in repro.stdout and "up to date" in repro.stdout
    for rel in ("models/fashion-mnist/model.onnx", "models/fashion-mnist/model_card.json", "metrics/evaluate.json",
                "reports/evaluation.json"):  # fmt: skip
        assert sha(bob / rel) == sha(project / rel), rel
    shown = dvc(bob, "metrics", "show", env=env)
    assert "metrics/evaluate.json" in shown.stdout and "metrics/train.json" in shown.stdout
    assert git(bob, "status", "--porcelain") == ""

    # Alice shares an experiment; Bob pulls it and compares
    # (an experiment that learns nothing, judged by a stricter gate: it fails and is still shared)
    exp = dvc(project, "exp", "run", "-n", "stricter", "-S", "train.learning_rate=0.000001",
              "-S", "evaluate.min_accuracy=0.5", env=env)  # fmt: skip
    assert exp.returncode == 0, exp.stdout + exp.stderr
    pushed = dvc(project, "exp", "push", "origin", "stricter", env=env)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert dvc(bob, "exp", "pull", "origin", "stricter", env=env).returncode == 0
    listed = dvc(bob, "exp", "show", "--json", env=env)
    exps = {e["revs"][0]["name"]: e["revs"][0]["data"] for b in json.loads(listed.stdout) for e in b.get("experiments") or []}
    assert exps["stricter"]["metrics"]["metrics/evaluate.json"]["data"]["gate"] is False
