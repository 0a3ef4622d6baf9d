"""Shared fixtures: a throw-away copy of the project in a temporary git repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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
