"""The gcp target's state (``gs://<bucket>/.edge/state.yaml``, lock beside it).

Setup writes it last, through the shared :class:`~vertex_edge.provision.state_file.StateFileStep`;
records of what an earlier teardown kept (``kept_*``, e.g. the MongoDB disk) are carried over.
Teardown removes each record as its deletion succeeds (:class:`StateRecorder`), under the lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vertex_edge.gcp.object_store import state_store
from vertex_edge.provision.engine import Check, Step
from vertex_edge.provision.gcp.env import GcpEnv
from vertex_edge.provision.gcp.resource import GcpStep
from vertex_edge.provision.state_file import StateFileStep
from vertex_edge.state import Resource, State

KEPT_PREFIX = "kept_"  # state records of what teardown kept (e.g. the MongoDB disk)


def kept_records(state: State | None) -> dict[str, Resource]:
    """The records of what teardown kept, by key."""
    return {k: r for k, r in (state.resources.items() if state else []) if k.startswith(KEPT_PREFIX)}


@dataclass
class Recorded:
    """A state record no step manages (what teardown kept): carried over as it is."""

    key: str
    resource: Resource
    title: str = "kept resource"

    def expected(self) -> Resource:
        return self.resource


class StateStep(GcpStep):
    """The state file in the bucket."""

    key = "state"
    title = "state file"
    api = "storage.googleapis.com"

    def __init__(self, env: GcpEnv, steps: list[Step]) -> None:
        super().__init__(env)
        self.inner = StateFileStep(state_store(env.clients, env.names), "gcp", steps)

    def expected(self) -> Resource:
        return self.inner.expected()

    def pending(self) -> str | None:
        if not self.env.bucket_ready:
            return "once the bucket exists"
        return super().pending()

    def _check(self) -> Check:
        state, _ = self.inner.store.load()
        known = {s.key for s in self.inner.steps}
        for key, resource in kept_records(state).items():
            if key not in known:
                self.inner.steps.append(Recorded(key, resource))  # type: ignore[arg-type]
        return self.inner.check()

    def _apply(self, check: Check) -> Resource:
        return self.inner.apply(check)


@dataclass
class StateRecorder:
    """Removes state records as deletions succeed (under the lock, with generation preconditions)."""

    env: GcpEnv
    state: State | None = None
    generation: int = 0
    gone: bool = False
    removed: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = state_store(self.env.clients, self.env.names)

    def load(self) -> None:
        self.state, self.generation = self.store.load()

    def update(self, removes: tuple[str, ...], kept: list[Resource]) -> None:
        if self.gone or self.state is None:
            return
        if "state" in removes:  # the bucket, and the state in it, are gone
            self.gone = True
            return
        changed = False
        for key in removes:
            if self.state.resources.pop(key, None) is not None:
                self.removed.append(key)
                changed = True
        for res in kept:
            self.state.resources[f"{KEPT_PREFIX}{res.kind}_{res.name}"] = res
            changed = True
        if changed:
            self.generation = self.store.save(self.state, self.generation)
