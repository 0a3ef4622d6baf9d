"""The state-file step both targets end with: it records what exists, on any
:class:`~vertex_edge.state.StateStore` (a local folder, or the gcp target's bucket)."""

from __future__ import annotations

from dataclasses import dataclass

from vertex_edge.provision.engine import Action, Check, Step
from vertex_edge.state import Resource, State, StateStore


@dataclass
class StateFileStep:
    """Records what exists. Written last, and only when it would change."""

    store: StateStore
    target: str
    steps: list[Step]
    key: str = "state"
    title: str = "state file"

    @property
    def resources(self) -> dict[str, Resource]:
        return {s.key: s.expected() for s in self.steps}

    def expected(self) -> Resource:
        return Resource(kind="state", name="state", location=self.store.location)

    def check(self) -> Check:
        state, _ = self.store.load()
        if state is None:
            return Check(Action.CREATE, self.store.location)
        if _comparable(state.resources) != _comparable(self.resources) or state.target != self.target:
            return Check(Action.UPDATE, self.store.location)
        return Check(Action.KEEP, self.store.location, self.expected())

    def apply(self, check: Check) -> Resource:
        state, generation = self.store.load()
        new = State(target=self.target, resources=dict(self.resources))
        if state is not None:
            # keep creation times of resources that already existed
            for key, res in new.resources.items():
                old = state.resources.get(key)
                if old is not None and _comparable({key: old}) == _comparable({key: res}):
                    new.resources[key] = old
        self.store.save(new, generation)
        return self.expected()


def _comparable(resources: dict[str, Resource]) -> dict[str, tuple[str, str, str]]:
    return {k: (r.kind, r.name, r.location) for k, r in resources.items()}
