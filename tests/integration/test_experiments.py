"""The experiment loop as DVC users run it, on tiny synthetic data: `dvc exp run`, `dvc exp run
--queue` + `dvc queue start`, `dvc exp show`, `dvc exp diff`, `dvc exp apply`, then
`deploy-vertex.py` - with an experiment that fails the quality gate (kept, never deployed), one
that tries to lower the gate, and one restored from DVC's run cache."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_pipeline import commit_all, dvc, seeded

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def experiments(project: Path, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """{experiment name: {"metrics": {...}, "params": {...}, "rev": ...}} from `dvc exp show --json`."""
    shown = dvc(project, "exp", "show", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    found: dict[str, dict[str, Any]] = {}
    for baseline in json.loads(shown.stdout):
        for exp in baseline.get("experiments") or []:
            rev = exp["revs"][0]
            data = rev.get("data") or {}
            metrics = {k: v for f in (data.get("metrics") or {}).values() for k, v in (f.get("data") or {}).items()}
            params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
            found[rev["name"]] = {"metrics": metrics, "params": params, "rev": rev["rev"]}
    return found


def wait_for_queue(project: Path, env: dict[str, str], timeout: float = 900) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = dvc(project, "queue", "status", env=env).stdout
        if "Queued" not in status and "Running" not in status:
            return status
        assert time.monotonic() < deadline, status
        time.sleep(2)


def runs(project: Path) -> dict[str, dict[str, Any]]:
    """Sacred runs in the workspace's file store: {id: {"status", "dvc"}}."""
    out = {}
    for folder in (project / ".edge" / "experiments").iterdir():
        if folder.name.isdigit():
            info = json.loads((folder / "info.json").read_text())
            out[folder.name] = {"status": json.loads((folder / "run.json").read_text())["status"], "dvc": info["dvc"]}
    return out


def deploy(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "deploy-vertex.py", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_the_experiment_loop(project: Path, tmp_path: Path) -> None:
    env = seeded(project, tmp_path, min_accuracy=0.3, epochs=2)
    assert dvc(project, "repro", env=env).returncode == 0
    commit_all(project, "baseline")  # experiments need a committed baseline

    # a workspace experiment, then two queued ones (one learns nothing and fails the gate)
    more = dvc(project, "exp", "run", "-n", "more", "-S", "train.epochs=3", env=env)
    assert more.returncode == 0, more.stdout + more.stderr
    for name, override in (("crawl", "train.learning_rate=0.000001"), ("wide", "train.model.dense=16")):
        queued = dvc(project, "exp", "run", "--queue", "-n", name, "-S", override, env=env)
        assert queued.returncode == 0, queued.stderr
    started = dvc(project, "queue", "start", env=env)
    assert started.returncode == 0, started.stderr
    try:
        status = wait_for_queue(project, env)
    finally:
        dvc(project, "queue", "stop", env=env)
    assert status.count("Success") == 2, status

    exps = experiments(project, env)
    assert {"more", "crawl", "wide"} <= set(exps)
    crawl = exps["crawl"]["metrics"]
    assert crawl["gate"] is False and crawl["accuracy"] < 0.3 and crawl["threshold"] == 0.3  # kept, with its figures
    assert exps["more"]["metrics"]["gate"] is True and exps["more"]["params"]["train"]["epochs"] == 3

    # each training is one Sacred run in the WORKSPACE's store, naming its DVC experiment; train.json names the run
    by_exp = {r["dvc"]["experiment"]: (rid, r) for rid, r in runs(project).items() if r["dvc"]["experiment"]}
    assert set(by_exp) == {"more", "crawl", "wide"}
    assert by_exp["more"][1]["dvc"]["queued"] is False and by_exp["crawl"][1]["dvc"]["queued"] is True
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout.strip()
    assert all(r["dvc"]["baseline"] == head and r["status"] == "COMPLETED" for _, r in by_exp.values())
    for name, (rid, _) in by_exp.items():
        assert exps[name]["metrics"]["sacred_run_id"] == rid
        attached = json.loads((project / ".edge" / "experiments" / rid / "run.json").read_text())["artifacts"]
        assert "confusion_matrix.png" in attached and "train_history.csv" in attached
    assert not list((project / ".dvc" / "tmp" / "exps").glob("tmp*/.edge"))  # nothing landed in DVC's clones

    # the figures first, then the params (a terminal pager shows every column in this order)
    header = dvc(project, "exp", "show", "--csv", env=env).stdout.splitlines()[0].split(",")
    first = header.index("accuracy")
    assert header[first : first + 5] == ["accuracy", "loss", "gate", "threshold", "margin"]
    assert header.index("train.epochs") < header.index("data/fashion-mnist.yaml")
    # on a narrow terminal without a pager, --only-changed (the README's tip) keeps the figures readable
    table = dvc(project, "exp", "show", "--no-pager", "--only-changed", env={**env, "COLUMNS": "200"}).stdout
    shown = next(line for line in table.splitlines() if "Experiment" in line).split()
    assert shown[shown.index("accuracy") : shown.index("accuracy") + 3] == ["accuracy", "loss", "gate"]
    diff = dvc(project, "exp", "diff", "more", "crawl", env=env)
    assert diff.returncode == 0 and "accuracy" in diff.stdout and "train.learning_rate" in diff.stdout

    # trying to lower the gate: train comes from the run cache (crawl's params), evaluate passes it
    lowered = dvc(project, "exp", "run", "-n", "lowered", "-S", "train.learning_rate=0.000001",
                  "-S", "evaluate.min_accuracy=0", env=env)  # fmt: skip
    assert lowered.returncode == 0, lowered.stdout + lowered.stderr
    assert "Running stage 'train'" not in lowered.stdout  # restored from the run cache: no new Sacred run
    exps = experiments(project, env)
    assert exps["lowered"]["metrics"]["gate"] is True
    assert exps["lowered"]["metrics"]["sacred_run_id"] == by_exp["crawl"][0]  # still names the run that made it
    assert len(runs(project)) == 4

    # exp apply, then deploy: only a model that passes the COMMITTED gate leaves the lab
    for name in ("crawl", "lowered"):
        assert dvc(project, "exp", "apply", name, env=env).returncode == 0
        refused = deploy(project, env)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "is below the quality gate evaluate.min_accuracy 0.3000" in refused.stderr
        gate = subprocess.run([sys.executable, "-m", "steps.gate"], cwd=project, env=env, capture_output=True, text=True)
        assert gate.returncode == 1
    assert "deploy enforces the committed 0.3000" in refused.stderr  # lowered's override is named, not obeyed
    assert not (project / ".edge" / "registry" / "fashion-mnist" / "versions").exists()

    assert dvc(project, "exp", "apply", "more", env=env).returncode == 0
    shipped = deploy(project, env)
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    assert "registered" in shipped.stdout and "pointed fashion-mnist-endpoint at version 1" in shipped.stdout
    meta = json.loads((project / ".edge" / "registry" / "fashion-mnist" / "versions" / "1" / "metadata.json").read_text())
    assert meta["sacred_run_id"] == by_exp["more"][0] and meta["quality_gate"]["passed"] is True
    assert meta["metrics"]["test_accuracy"] == pytest.approx(exps["more"]["metrics"]["accuracy"], abs=1e-4)

    # the champion check compares the next candidate with version 1 (shown by --dry-run)
    assert dvc(project, "exp", "apply", "wide", env=env).returncode == 0
    plan = deploy(project, env, "--dry-run")
    assert "champion/challenger: challenger" in plan.stdout and "vs champion version 1" in plan.stdout
