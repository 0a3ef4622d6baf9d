"""The local target's steps: a storage root, the DVC default remote, the experiment store, the
model registry and the state file (:mod:`~vertex_edge.provision.state_file`) - all on this
machine, at the paths :class:`~vertex_edge.layout.LocalLayout` derives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vertex_edge import dvc
from vertex_edge.config import EdgeConfig
from vertex_edge.layout import LocalLayout
from vertex_edge.provision.engine import Action, Check, Step
from vertex_edge.provision.state_file import StateFileStep
from vertex_edge.state import Resource

DVC_REMOTE_NAME = "edge-local"


@dataclass
class FolderStep:
    key: str
    title: str
    path: Path

    def expected(self) -> Resource:
        return Resource(kind="folder", name=self.key, location=str(self.path))

    def check(self) -> Check:
        if self.path.is_dir():
            return Check(Action.KEEP, str(self.path), self.expected())
        if self.path.exists():
            return Check(Action.UNKNOWN, f"{self.path} exists and is not a folder")
        return Check(Action.CREATE, str(self.path))

    def apply(self, check: Check) -> Resource:
        self.path.mkdir(parents=True, exist_ok=True)
        return self.expected()


@dataclass
class DvcRepoStep:
    repo: Path
    key: str = "dvc_repo"
    title: str = "DVC repository"

    def expected(self) -> Resource:
        return Resource(kind="dvc-repo", name="dvc", location=str(self.repo / ".dvc"))

    def check(self) -> Check:
        if dvc.is_initialised(self.repo):
            return Check(Action.KEEP, str(self.repo / ".dvc"), self.expected())
        return Check(Action.CREATE, f"dvc init in {self.repo}")

    def apply(self, check: Check) -> Resource:
        dvc.init(self.repo)
        return self.expected()


@dataclass
class DvcRemoteStep:
    """The DVC default remote, in DVC's *local* config (``.dvc/config.local``, not committed)."""

    repo: Path
    url: str
    name: str = DVC_REMOTE_NAME
    key: str = "dvc_remote"
    title: str = "DVC default remote"

    def expected(self) -> Resource:
        return Resource(kind="dvc-remote", name=self.name, location=self.url, details={"config": "local"})

    def check(self) -> Check:
        if not dvc.is_initialised(self.repo):
            return Check(Action.CREATE, f"{self.name} -> {self.url}")
        current = dvc.remote_url(self.repo, self.name)
        default = dvc.default_remote(self.repo)
        if current is None:
            return Check(Action.CREATE, f"{self.name} -> {self.url}")
        if Path(current) != Path(self.url) or default != self.name:
            return Check(Action.UPDATE, f"{self.name}: {current} -> {self.url}")
        return Check(Action.KEEP, f"{self.name} -> {self.url}", self.expected())

    def apply(self, check: Check) -> Resource:
        Path(self.url).mkdir(parents=True, exist_ok=True)
        dvc.set_remote(self.repo, self.name, self.url, level="local", default=True)
        return self.expected()


def local_steps(config: EdgeConfig, repo: Path) -> list[Step]:
    """The local target's steps, in order; the state file that records them comes last."""
    layout = LocalLayout.from_config(config, repo)
    steps: list[Step] = [
        FolderStep("storage_root", "storage root", layout.root),
        DvcRepoStep(layout.repo),
        DvcRemoteStep(layout.repo, str(layout.dvcstore)),
    ]
    if config.tracking.enabled and not config.tracking.mongodb_url:
        steps.append(FolderStep("experiments", "experiment store (Sacred files)", layout.experiments))
    steps.append(FolderStep("registry", "model registry", layout.registry))
    steps.append(StateFileStep(layout.state_store(), "local", list(steps)))
    return steps
