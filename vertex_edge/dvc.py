"""DVC through its CLI (``python -m dvc``), with argument lists and checks."""

from __future__ import annotations

import sys
from pathlib import Path

from vertex_edge import proc


def dvc(repo: Path, *args: str, check: bool = True, capture: bool = True) -> str:
    result = proc.run([sys.executable, "-m", "dvc", *args], cwd=repo, check=check, capture=capture)
    return (result.stdout or b"").decode("utf-8", "replace")


def is_initialised(repo: Path) -> bool:
    return (repo / ".dvc" / "config").exists() or (repo / ".dvc").is_dir()


def init(repo: Path) -> None:
    dvc(repo, "init", "--quiet")


def config_get(repo: Path, key: str, *, level: str = "local") -> str | None:
    """Read one config value at ``level`` (local, repo, ...); None if unset."""
    result = proc.run([sys.executable, "-m", "dvc", "config", f"--{level}", key], cwd=repo, check=False)
    if result.returncode != 0:
        return None
    value = (result.stdout or b"").decode().strip()
    return value or None


def remote_url(repo: Path, name: str, *, level: str = "local") -> str | None:
    return config_get(repo, f"remote.{name}.url", level=level)


def default_remote(repo: Path, *, level: str = "local") -> str | None:
    return config_get(repo, "core.remote", level=level)


def set_remote(repo: Path, name: str, url: str, *, level: str = "local", default: bool = True) -> None:
    """Add or repoint remote ``name`` (``dvc remote add/modify``) and make it the default."""
    if remote_url(repo, name, level=level) is None:
        args = ["remote", "add", f"--{level}"]
        if default:
            args.append("--default")
        dvc(repo, *args, name, url)
    else:
        dvc(repo, "remote", "modify", f"--{level}", name, "url", url)
        if default:
            dvc(repo, "remote", "default", f"--{level}", name)


def add(repo: Path, paths: list[str]) -> None:
    dvc(repo, "add", "--quiet", *paths)


def push(repo: Path, targets: list[str]) -> str:
    return dvc(repo, "push", *targets)
