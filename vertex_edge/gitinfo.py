"""The git commit and dirty flag of the working tree (no commit outside a git repository)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from vertex_edge import proc
from vertex_edge.errors import ExternalToolError


class GitInfo(BaseModel):
    """Which code made something: the commit, and whether the working tree had uncommitted changes."""

    model_config = ConfigDict(extra="allow", frozen=True)

    commit: str | None = None
    dirty: bool = False

    def short(self) -> str:
        """``abcdef12`` or ``abcdef12+dirty``; ``-`` without a commit."""
        return ((self.commit or "")[:8] + ("+dirty" if self.dirty else "")) or "-"


def git_info(repo: Path) -> GitInfo:
    try:
        commit = proc.run(["git", "rev-parse", "HEAD"], cwd=repo).stdout.decode().strip()
        status = proc.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo).stdout.decode()
    except ExternalToolError:
        return GitInfo()
    return GitInfo(commit=commit, dirty=bool(status.strip()))
