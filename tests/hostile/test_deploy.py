"""Deploys that tell the truth, and locks that do not strand anyone - tried as an operator would,
every command a real process (``deploy-vertex.py``, ``edge.py``), the serving side a stand-in
process that follows ``endpoint.json`` and reports through the real ``write_status`` (it loads
each version with ONNX Runtime, as the server does):

* a rollback onto a version whose ``model.onnx`` rotted is refused, and nothing changes;
* a version that cannot be loaded (a consistent card, an invalid model) fails the deploy, the
  endpoint is set back, and ``endpoint describe`` shows what really serves;
* a server that stops answering (SIGSTOP) fails the deploy after ``--wait``, and describe says
  the server and the traffic map disagree;
* a lock whose holder was SIGKILLed on this host is cleared by itself (saying so); one taken on
  another host is reported with the one command that clears it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, tool_env
from tests.registry.conftest import train

pytestmark = pytest.mark.slow  # real processes (a second or two each)

REG = Path(".edge/registry/fashion-mnist")
URL = "http://127.0.0.1:18080"

STAND_IN = r'''
import os, sys, time
from pathlib import Path
import onnxruntime as ort
from vertex_edge.registry import served_version
from vertex_edge.serving_status import write_status

endpoint = Path(sys.argv[1])
serving, seen = None, None
while True:
    try:
        signature = os.stat(endpoint).st_mtime_ns
    except OSError:
        signature = None
    if signature is not None and signature != seen:
        seen = signature
        version, folder = served_version(endpoint)
        if version != serving:
            write_status(endpoint, url=sys.argv[2], serving_version=serving, target_version=version)
            try:
                ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
            except Exception as exc:
                error = f"cannot load version {version}: {type(exc).__name__}: {str(exc)[:120]}"
                write_status(endpoint, url=sys.argv[2], serving_version=serving, target_version=version, error=error)
            else:
                serving = version
                write_status(endpoint, url=sys.argv[2], serving_version=serving, target_version=version)
        else:
            write_status(endpoint, url=sys.argv[2], serving_version=serving, target_version=version)
    time.sleep(0.1)
'''


def run(repo: Path, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(REPO / tool), "--repo", str(repo), *args], cwd=repo, env=tool_env(),
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def deploy(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(repo, "deploy-vertex.py", *args)


def edge(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(repo, "edge.py", *args)


def describe(repo: Path) -> dict:
    result = edge(repo, "endpoint", "describe", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "project"
    repo.mkdir()
    (repo / "edge.yaml").write_text("version: 1\ntarget: local\nstorage:\n  root: .edge\n")
    (repo / "params.yaml").write_text("train:\n  epochs: 1\nevaluate:\n  min_accuracy: 0.9\ndeploy:\n  max_regression: 0.05\n")
    train(repo, version="v1-aaaa", accuracy=0.93)
    return repo


@pytest.fixture
def server(repo: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Version 1 deployed, then the stand-in server following the endpoint."""
    assert deploy(repo).returncode == 0
    script = repo.parent / "stand_in.py"
    script.write_text(STAND_IN)
    proc = subprocess.Popen([sys.executable, str(script), str(repo / REG / "endpoint.json"), URL], cwd=repo,
                            env=tool_env(PYTHONPATH=str(REPO)))  # fmt: skip
    deadline = time.monotonic() + 60
    while not (repo / REG / "serving-status.json").exists() or '"serving_version": "1"' not in (
        repo / REG / "serving-status.json"
    ).read_text():
        assert proc.poll() is None and time.monotonic() < deadline, "the stand-in server did not start"
        time.sleep(0.1)
    yield proc
    os.kill(proc.pid, signal.SIGCONT)
    proc.terminate()
    proc.wait(10)


def consistent_but_unloadable(repo: Path, version: str) -> None:
    """A trained model whose model.onnx is not a model, with a card and evaluation that match it."""
    folder = train(repo, version=version, accuracy=0.95, bias_class=3)
    data = b"not an ONNX model at all"
    (folder / "model.onnx").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    card = json.loads((folder / "model_card.json").read_text())
    card["artifacts"]["model.onnx"] = {"sha256": digest, "bytes": len(data)}
    (folder / "model_card.json").write_text(json.dumps(card))
    record = json.loads((repo / "reports" / "evaluation.json").read_text())
    (repo / "reports" / "evaluation.json").write_text(json.dumps({**record, "model_sha256": digest}))


# ---------------------------------------------------------------- deploys that tell the truth


def test_a_rollback_onto_a_rotted_version_is_refused_and_nothing_changes(repo: Path, server: subprocess.Popen) -> None:
    train(repo, version="v2-bbbb", accuracy=0.94, bias_class=3)
    assert deploy(repo).returncode == 0
    assert describe(repo)["serving_version"] == "2"
    onnx = repo / REG / "versions" / "1" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-7] + b"bit rot")
    before = (repo / REG / "endpoint.json").read_bytes()

    for args in (["--rollback"], ["--version", "1"]):
        result = deploy(repo, *args)
        assert result.returncode == 1, result.stdout
        assert "version 1 is corrupt" in result.stderr and "versions/1/model.onnx has sha256" in result.stderr
    assert "cannot roll fashion-mnist-endpoint back to version 1" in deploy(repo, "--rollback").stderr
    assert (repo / REG / "endpoint.json").read_bytes() == before
    time.sleep(0.5)
    data = describe(repo)
    assert (data["traffic_version"], data["serving_version"], data["in_sync"]) == ("2", "2", True)
    assert data["server"]["pid"] == server.pid and data["server"]["error"] is None


def test_a_version_the_server_cannot_load_fails_the_deploy_and_describe_says_what_serves(
    repo: Path, server: subprocess.Popen
) -> None:
    consistent_but_unloadable(repo, "v2-broken")
    result = deploy(repo, "--wait", "30")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"the server (pid {server.pid}, {URL}) could not load version 2 and still serves version 1" in result.stderr
    assert "cannot load version 2: " in result.stderr
    assert "fashion-mnist-endpoint was set back to version 1, which is what it serves" in result.stderr
    endpoint = json.loads((repo / REG / "endpoint.json").read_text())
    assert endpoint["traffic"] == {"1": 100} and endpoint["history"][-1]["note"] == "the server could not load version 2"
    time.sleep(0.5)  # the stand-in sees the endpoint set back
    data = describe(repo)
    assert (data["traffic_version"], data["serving_version"], data["in_sync"]) == ("1", "1", True)
    text = edge(repo, "endpoint", "describe").stdout
    assert f"serving: the server (pid {server.pid}, {URL}) serves version 1" in text


def test_a_server_that_stops_answering_fails_the_deploy_and_describe_shows_the_split(
    repo: Path, server: subprocess.Popen
) -> None:
    os.kill(server.pid, signal.SIGSTOP)  # alive, but it will not load anything
    train(repo, version="v2-bbbb", accuracy=0.94, bias_class=3)
    result = deploy(repo, "--wait", "1")
    assert result.returncode == 1
    assert "has not reported serving version 2 yet; it reports: the server" in result.stderr and "--wait" in result.stderr
    data = describe(repo)
    assert (data["traffic_version"], data["serving_version"], data["in_sync"]) == ("2", "1", False)
    assert "(not the traffic map's version 2)" in edge(repo, "endpoint", "describe").stdout
    os.kill(server.pid, signal.SIGCONT)
    deadline = time.monotonic() + 30
    while describe(repo)["serving_version"] != "2":
        assert time.monotonic() < deadline, "the stand-in did not catch up"
        time.sleep(0.2)


# ---------------------------------------------------------------- stale locks


HOLDER = r'''
import sys, time
from pathlib import Path
from vertex_edge.registry import LocalRegistry
from vertex_edge.state import StateStore
from vertex_edge.storage import LocalStore

where, kind = Path(sys.argv[1]), sys.argv[2]
store = LocalRegistry(where, "fashion-mnist") if kind == "registry" else StateStore(LocalStore(where))
with store.lock("killed while holding the lock"):
    print("locked", flush=True)
    time.sleep(120)
'''


def killed_holder(tmp_path: Path, where: Path, kind: str) -> int:
    """The pid of a process that took the lock and was SIGKILLed (its lock file stays)."""
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    proc = subprocess.Popen([sys.executable, str(script), str(where), kind], stdout=subprocess.PIPE,
                            env=tool_env(PYTHONPATH=str(REPO)))  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"locked"
    proc.kill()
    proc.wait(10)
    return proc.pid


def foreign_lock(path: Path) -> None:
    path.write_text("user: alice\nhost: ci-runner-7\npid: 4242\ncommand: edge.py setup\nsince: '2026-11-22T10:00:00+00:00'\n")


def test_a_registry_lock_of_a_killed_deploy_is_cleared_and_a_foreign_one_reported(repo: Path, tmp_path: Path) -> None:
    registry = repo / ".edge" / "registry"
    pid = killed_holder(tmp_path, registry, "registry")
    lock = repo / REG / "registry.lock"
    assert lock.exists()

    result = deploy(repo)
    assert result.returncode == 0, result.stderr
    assert "removed a stale lock" in result.stderr and f"(pid {pid}, 'killed while holding the lock')" in result.stderr
    assert not lock.exists()

    foreign_lock(lock)
    train(repo, version="v2-bbbb", accuracy=0.94, bias_class=3)
    result = deploy(repo)
    assert result.returncode == 3
    assert "locked by alice@ci-runner-7 (pid 4242, 'edge.py setup')" in result.stderr
    assert "taken on another host (ci-runner-7)" in result.stderr
    assert "'python edge.py force-unlock --registry'" in result.stderr
    cleared = edge(repo, "force-unlock", "--registry", "--yes")
    assert cleared.returncode == 0 and "lock removed" in cleared.stdout and not lock.exists()
    assert deploy(repo).returncode == 0


def test_a_setup_lock_of_a_killed_setup_is_cleared_and_a_foreign_one_reported(project: Path, tmp_path: Path) -> None:
    assert edge(project, "setup", "--target", "local", "--yes").returncode == 0
    state = project / ".edge"
    pid = killed_holder(tmp_path, state, "state")
    assert (state / "state.lock").exists()

    result = edge(project, "setup", "--yes")
    assert result.returncode == 0, result.stderr
    assert "removed a stale lock" in result.stderr and f"(pid {pid}," in result.stderr
    assert "is no longer running on this host" in result.stderr
    assert not (state / "state.lock").exists()

    foreign_lock(state / "state.lock")
    result = edge(project, "setup", "--yes")
    assert result.returncode == 3
    assert "taken on another host (ci-runner-7)" in result.stderr and "'python edge.py force-unlock'" in result.stderr
    assert edge(project, "force-unlock", "--yes").returncode == 0
    assert edge(project, "setup", "--yes").returncode == 0
