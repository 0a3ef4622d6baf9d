"""The git commit and dirty flag of the working tree (None outside a git repository)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vertex_edge import proc
from vertex_edge.errors import ExternalToolError


def git_info(repo: Path) -> dict[str, Any]:
    try:
        commit = proc.run(["git", "rev-parse", "HEAD"], cwd=repo).stdout.decode().strip()
        status = proc.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo).stdout.decode()
    except ExternalToolError:
        return {"commit": None, "dirty": False}
    return {"commit": commit, "dirty": bool(status.strip())}
