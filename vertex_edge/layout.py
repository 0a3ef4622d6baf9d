"""Where the local target keeps things: every path under the storage root, derived once.

The DVC store, the Sacred file store, the model registry, the state file and the vertex-local
job folders all live under ``storage.root`` (``.edge/`` by default). Provisioning creates the
folders; training, tracking, deploy and serving only read the paths from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vertex_edge.config import EdgeConfig
from vertex_edge.state import StateStore
from vertex_edge.storage import LocalStore


@dataclass(frozen=True)
class LocalLayout:
    """Every local path the target uses, derived from the config once."""

    repo: Path
    root: Path

    @classmethod
    def from_config(cls, config: EdgeConfig, repo: Path) -> LocalLayout:
        return cls(repo=repo.resolve(), root=config.storage_root(repo.resolve()).resolve())

    @property
    def dvcstore(self) -> Path:
        return self.root / "dvcstore"

    @property
    def experiments(self) -> Path:
        return self.root / "experiments"

    @property
    def registry(self) -> Path:
        return self.root / "registry"

    def state_store(self) -> StateStore:
        return StateStore(LocalStore(self.root))

    @property
    def vertex_local_jobs(self) -> Path:
        """The ``vertex-local`` backend's job outputs (what Vertex AI writes to the bucket)."""
        return self.root / "vertex-local" / "jobs"
