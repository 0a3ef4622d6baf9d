"""`python edge.py setup --target local` as a user runs it: plan, idempotency, lock, errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_edge

pytestmark = pytest.mark.slow  # runs dvc subprocesses (a few seconds each)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_dry_run_touches_nothing(project: Path) -> None:
    result = run_edge(project, "setup", "--target", "local", "--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for line in (
        "will create   edge.yaml",
        "storage root",
        "DVC default remote",
        "state file",
        "dry run: nothing was changed",
    ):
        assert line in out
    assert not (project / "edge.yaml").exists()
    assert not (project / ".edge").exists()
    assert not (project / ".dvc" / "config.local").exists()


def test_setup_is_idempotent(project: Path) -> None:
    first = run_edge(project, "setup", "--target", "local", "--yes")
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout
    config = yaml.safe_load((project / "edge.yaml").read_text())
    assert config["target"] == "local"
    # the remote lives in DVC's local config, never in the committed .dvc/config
    assert "edge-local" in (project / ".dvc" / "config.local").read_text()
    assert "edge-local" not in (project / ".dvc" / "config").read_text()
    assert (project / ".edge" / "dvcstore").is_dir()
    assert (project / ".edge" / "experiments").is_dir()
    state_before = _digest(project / ".edge" / "state.yaml")
    edge_before = _digest(project / "edge.yaml")

    second = run_edge(project, "setup", "--target", "local", "--yes")
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout and "updated" not in second.stdout
    assert second.stdout.count("already present") >= 6
    assert "nothing to do" in second.stdout
    assert _digest(project / ".edge" / "state.yaml") == state_before
    assert _digest(project / "edge.yaml") == edge_before

    plan = run_edge(project, "setup", "--dry-run")
    assert "will create" not in plan.stdout and "exists, keep" in plan.stdout


def test_flags_and_env_answer_the_wizard(project: Path) -> None:
    from tests.conftest import tool_env

    env = tool_env(EDGE_MODEL_NAME="sneakers", EDGE_STORAGE_ROOT="store")
    result = run_edge(project, "setup", "--mongodb-url", "mongodb://db.example:27017", env=env)
    assert result.returncode == 0, result.stderr  # off a TTY: no questions
    config = yaml.safe_load((project / "edge.yaml").read_text())
    assert config["model"]["name"] == "sneakers"
    assert config["storage"]["root"] == "store"
    assert config["tracking"]["mongodb_url"] == "mongodb://db.example:27017"
    assert (project / "store" / "state.yaml").exists()


def test_password_on_command_line_is_refused(project: Path) -> None:
    result = run_edge(project, "setup", "--mongodb-url", "mongodb://u:hunter2@db:27017", "--yes")
    assert result.returncode == 2
    assert "EDGE_MONGODB_URL" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    assert not (project / "edge.yaml").exists()


def test_password_from_env_never_reaches_edge_yaml(project: Path) -> None:
    from tests.conftest import tool_env

    env = tool_env(EDGE_MONGODB_URL="mongodb://u:hunter2@db:27017")
    result = run_edge(project, "setup", "--yes", "--dry-run", env=env)
    assert result.returncode == 0
    assert "hunter2" not in result.stdout + result.stderr


def test_held_lock_fails_at_once_then_force_unlock(project: Path) -> None:
    assert run_edge(project, "setup", "--yes").returncode == 0
    lock = project / ".edge" / "state.lock"
    lock.write_text(
        "user: alice\nhost: laptop\npid: 4242\ncommand: edge.py setup\nsince: '2026-11-22T10:00:00+00:00'\n"
    )
    result = run_edge(project, "setup", "--yes")
    assert result.returncode == 3
    assert "alice@laptop" in result.stderr and "2026-11-22T10:00:00" in result.stderr
    assert "force-unlock" in result.stderr
    assert "Traceback" not in result.stderr

    refused = run_edge(project, "force-unlock")  # no TTY and no --yes: refuse
    assert refused.returncode == 2 and lock.exists()
    done = run_edge(project, "force-unlock", "--yes")
    assert done.returncode == 0 and "lock removed" in done.stdout
    assert not lock.exists()
    assert run_edge(project, "setup", "--yes").returncode == 0


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("target: local\nmodle: {}\n", "modle: unknown key"),
        ("target: local\ntracking:\n  enabled: sometimes\n", "tracking.enabled"),
        ("target: gcp\n", "needs a 'gcp' section"),
    ],
)
def test_invalid_edge_yaml_exit_2_no_traceback(project: Path, content: str, fragment: str) -> None:
    (project / "edge.yaml").write_text(content)
    result = run_edge(project, "setup", "--yes")
    assert result.returncode == 2
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project / ".edge").exists()


def test_every_command_explains_itself(project: Path) -> None:
    top = run_edge(project, "--help")
    assert top.returncode == 0 and "setup" in top.stdout
    for cmd in (["setup"], ["force-unlock"], ["data", "seed"], ["experiments", "list"], ["experiments", "show"]):
        result = run_edge(project, *cmd, "--help")
        assert result.returncode == 0, (cmd, result.stderr)
        assert "Usage:" in result.stdout


def test_unknown_flag_is_a_usage_error(project: Path) -> None:
    result = run_edge(project, "setup", "--colour", "blue")
    assert result.returncode == 2
    assert "No such option" in result.stderr


def test_wizard_on_a_terminal(project: Path) -> None:
    """On a TTY with no edge.yaml, setup asks; Enter keeps each default."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    from tests.conftest import tool_env

    env = tool_env()
    env.pop("CI", None)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "edge.py", "setup", "--dry-run"], cwd=project, env=env, stdin=slave, stdout=slave, stderr=slave
    )
    os.close(slave)
    answers = iter(["local", "boots", "store2", "none"])
    seen = b""
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        seen += chunk
        if chunk.rstrip().endswith(b":"):
            os.write(master, (next(answers, "") + "\n").encode())
    proc.wait(timeout=60)
    os.close(master)
    text = seen.decode(errors="replace")
    assert proc.returncode == 0, text
    for question in ("Target (local or gcp)", "Model name", "Storage root", "MongoDB URL"):
        assert question in text
    assert "store2" in text and "dry run: nothing was changed" in text
    assert not (project / "edge.yaml").exists()
