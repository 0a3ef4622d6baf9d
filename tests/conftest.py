"""Shared fixtures: a throw-away copy of the project in a temporary git repository."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = (
    "edge.py",
    "deploy-vertex.py",
    "vertex_edge",
    "steps",
    "data/fashion-mnist.yaml",
    "dvc.yaml",
    "dvc-step1.yaml",
    "dvc-step2.yaml",
    "params.yaml",
    ".dvcignore",
    ".gitignore",
    ".dvc/config",
    ".dvc/plots",
    ".dvc/.gitignore",
)


def tool_env(**extra: str) -> dict[str, str]:
    """The environment for subprocesses: this venv first on PATH (dvc runs `python -m steps...`)."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.pop("EDGE_MONGODB_URL", None)
    env.pop("EDGE_OFFLINE", None)
    env.update(extra)
    return env


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's code and pipeline in a fresh git repo (no data, no .edge)."""
    dest = tmp_path / "project"
    dest.mkdir()
    for rel in PROJECT_FILES:
        src = REPO / rel
        if not src.exists():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, target)
    git(dest, "init", "-q")
    git(dest, "config", "user.email", "test@example.com")
    git(dest, "config", "user.name", "test")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "project")
    return dest


def run_edge(
    project: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``python edge.py ARGS`` in ``project`` as a user would."""
    return subprocess.run(
        [sys.executable, "edge.py", *args],
        cwd=project,
        env=env or tool_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def gcs_emulator() -> Iterator[str]:
    """``gcp-storage-emulator`` (in memory) in its own process on a free port; yields ``http://127.0.0.1:PORT``."""
    exe = shutil.which("gcp-storage-emulator", path=str(Path(sys.executable).parent)) or shutil.which(
        "gcp-storage-emulator"
    )
    if exe is None:
        pytest.skip("gcp-storage-emulator is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gcp-storage-emulator did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
