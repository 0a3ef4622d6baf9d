"""A Vertex AI endpoint's deployments and traffic split, as plain data: what the deployer reads
from the endpoint, and the arithmetic of a new split (no SDK calls here)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from vertex_edge.artifact import ModelCard
from vertex_edge.errors import RegistryError, UsageError


@dataclass(frozen=True)
class Deployed:
    """One model deployed on the endpoint."""

    id: str
    model: str  # registry model resource name (no version)
    version: str
    display_name: str = ""

    @property
    def order(self) -> tuple[int, str]:
        return (int(self.version) if self.version.isdigit() else 0, self.id)


@dataclass
class EndpointView:
    deployed: list[Deployed]
    traffic: dict[str, int]

    def share(self, deployed_id: str) -> int:
        return int(self.traffic.get(deployed_id, 0))

    def newest_live(self) -> Deployed | None:
        """The newest deployment that gets traffic (during a canary: the canary)."""
        live = [d for d in self.deployed if self.share(d.id) > 0]
        return max(live, key=lambda d: d.order) if live else None

    def describe(self) -> str:
        if not self.deployed:
            return "nothing deployed"
        return ", ".join(f"version {d.version} ({d.id}): {self.share(d.id)}%" for d in sorted(self.deployed, key=lambda d: d.order))


def new_split(view: EndpointView, new_id: str, traffic: int) -> dict[str, int]:
    """``traffic`` % to ``new_id``; the rest stays with the others in their current proportions."""
    if traffic >= 100:
        return {new_id: 100}
    others = {d.id: view.share(d.id) for d in view.deployed if d.id != new_id and view.share(d.id) > 0}
    rest = 100 - traffic
    total = sum(others.values())
    if not others or total == 0:
        raise UsageError(f"--traffic {traffic}: the endpoint serves nothing else to keep {rest}% of the traffic")
    split = {k: rest * v // total for k, v in others.items()}
    first = max(others, key=lambda k: others[k])
    split[first] += rest - sum(split.values())
    return {new_id: traffic, **split}


def version_alias(card: ModelCard) -> str:
    """The registry alias naming one trained model: ``v`` + its card version (unique per artifact)."""
    return "v" + re.sub(r"[^a-zA-Z0-9-]", "-", card.version)[:126]


def rollback_refused(
    endpoint: str, target: str, current: str | None, problem: str, intact: str | None
) -> RegistryError:
    """The error for a rollback whose target no longer matches its card (both targets): the endpoint
    is left as it is, and the hint names the newest intact earlier version, if any."""
    hint = (
        f"the newest intact earlier version is {intact}: 'python deploy-vertex.py --version {intact}'"
        if intact
        else "no earlier version is intact: deploy a version with 'python deploy-vertex.py --version N' "
        "or a new model with 'python deploy-vertex.py'"
    )
    keeps = f" (version {current} keeps its traffic)" if current else ""
    return RegistryError(
        f"cannot roll {endpoint} back to version {target}: {problem}; the endpoint was not changed{keeps}", hint=hint
    )
