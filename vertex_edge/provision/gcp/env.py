"""What every gcp step and teardown item shares: the names, the clients, what earlier checks
found out, and the :class:`Gate` that closes once Google turns out unreachable.

Checks never change anything. :func:`guarded` runs one read-only check: a Google, network or
tool error becomes :class:`Unchecked` with a reason (through the one classifier,
:func:`vertex_edge.gcp.errors.classify`); an unreachable Google or unusable credentials also
close the gate, so every later check is "not checked" without trying (and without waiting on
timeouts again), with the reason said once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from vertex_edge import dvc as dvc_module
from vertex_edge.errors import CloudError, EdgeError
from vertex_edge.gcp.clients import GcpClients
from vertex_edge.gcp.errors import CloudProblem, classify
from vertex_edge.gcp.kube import KubeRunner
from vertex_edge.gcp.names import GcpNames
from vertex_edge.gcp.sacred import mongo_client
from vertex_edge.gcp.secret import generate_password

log = logging.getLogger(__name__)
T = TypeVar("T")

CHART_DIR = Path(__file__).resolve().parents[3] / "helm" / "sacred"
CALL_TIMEOUT = 30.0  # seconds, per API call
OPERATION_TIMEOUT = 900.0  # seconds, per long-running operation (not the cluster)
CLUSTER_TIMEOUT = 40 * 60.0
POLL_INTERVAL = 15.0


def enum_name(value: Any) -> str:
    """The name of a proto enum value (fakes may use plain strings)."""
    return str(getattr(value, "name", value))


@dataclass
class Gate:
    """Closed once Google turned out unreachable (or the credentials unusable): the reason, said once."""

    reason: str | None = None
    hint: str | None = None

    def block(self, reason: str, hint: str | None = None) -> None:
        if self.reason is None:
            self.reason, self.hint = reason, hint


@dataclass
class GcpEnv:
    """What every gcp step shares: names, clients, and what earlier checks found out."""

    names: GcpNames
    clients: GcpClients | None
    repo: Path
    chart_dir: Path = CHART_DIR
    dvc: Any = dvc_module  # the vertex_edge.dvc functions (injectable)
    gate: Gate = field(default_factory=Gate)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    notify: Callable[[str], None] = lambda message: None  # progress text for the spinner
    password_factory: Callable[[], str] = generate_password
    mongo: Callable[[str], Any] = mongo_client  # a MongoDB URL -> a pymongo-like client (injectable)
    call_timeout: float = CALL_TIMEOUT
    operation_timeout: float = OPERATION_TIMEOUT
    cluster_timeout: float = CLUSTER_TIMEOUT
    poll_interval: float = POLL_INTERVAL
    # found out by the checks, in order
    pending_apis: set[str] = field(default_factory=set)
    bucket_ready: bool = False
    cluster_ready: bool = False
    passwords_ready: set[str] = field(default_factory=set)  # the accounts whose password Secret Manager holds
    sacred_ready: bool = False  # helm/sacred (MongoDB) is deployed
    _kube: KubeRunner | None = None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def gcp(self) -> GcpClients:
        if self.clients is None:  # only reachable when the gate is open, i.e. never
            raise CloudError(self.gate.reason or "no Google Cloud clients", hint=self.gate.hint)
        return self.clients

    def kube(self) -> KubeRunner:
        """kubectl/helm for the cluster, opened once per run (a temporary kubeconfig)."""
        if self._kube is None:
            self._kube = self._stack.enter_context(self.gcp.kube(self.names.cluster_path))
        return self._kube

    def close(self) -> None:
        self._kube = None
        self._stack.close()

    def api_pending(self, api: str | None) -> bool:
        return api is not None and api in self.pending_apis


@dataclass(frozen=True)
class Unchecked:
    """A check that could not be made, and why (``problem``: Google's error, classified; None
    for one of our own typed errors)."""

    reason: str
    hint: str | None = None
    problem: CloudProblem | None = None

    @property
    def blocks_everything(self) -> bool:
        return self.problem is not None and self.problem.blocks_everything

    @property
    def kind(self) -> str:
        return self.problem.kind if self.problem is not None else ""

    @property
    def text(self) -> str:
        """The reason for one line; when it closed the gate, exactly the gate's reason (said once)."""
        if self.blocks_everything or not self.hint:
            return self.reason
        return f"{self.reason} ({self.hint})"


def guarded(env: GcpEnv, title: str, fn: Callable[[], T]) -> T | Unchecked:
    """Run a read-only check; a Google/network/tool error becomes :class:`Unchecked` with a reason.

    Unreachable Google or unusable credentials also close the gate (said once, nothing retried)."""
    try:
        return fn()
    except EdgeError as exc:
        return Unchecked(exc.message, exc.hint)
    except Exception as exc:  # noqa: BLE001 - classified below, re-raised if unknown
        problem = classify(exc)
        if problem is None:
            raise
        log.debug("%s: check failed: %s", title, exc)
        if problem.blocks_everything:
            env.gate.block(problem.message, problem.hint)
        return Unchecked(problem.message, problem.hint, problem)
