"""The two halves every gcp resource module implements, side by side:

* :class:`GcpStep` - setup: ``check()`` (get; read-only), ``apply()`` (create or update), on
  the shared engine (:mod:`vertex_edge.provision.engine`);
* :class:`TeardownItem` - teardown: ``check()`` (read-only), ``run()`` (delete, or secure what
  is kept).

Both name their resource in full without asking Google (:meth:`GcpStep.describe`,
:meth:`TeardownItem.describe`), so a plan says what it is about even when Google cannot be
reached. Checks go through :func:`~vertex_edge.provision.gcp.env.guarded` (the one classifier);
every change goes through :func:`~vertex_edge.gcp.errors.google_call` (the one translator).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from vertex_edge.gcp.errors import google_call
from vertex_edge.provision.engine import Action, Check
from vertex_edge.provision.gcp.env import GcpEnv, Unchecked, guarded
from vertex_edge.state import Resource


class GcpStep:
    """Base of every gcp setup step: guarded checks, translated errors, API dependencies."""

    key: str = ""
    title: str = ""
    api: str | None = None  # the Service Usage id this step's API needs
    cloud: bool = True  # False: a local step (still runs when Google is unreachable)

    def __init__(self, env: GcpEnv) -> None:
        self.env = env
        self.names = env.names

    def expected(self) -> Resource:  # pragma: no cover - every step overrides it
        raise NotImplementedError

    def _check(self) -> Check:  # pragma: no cover
        raise NotImplementedError

    def _apply(self, check: Check) -> Resource:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> str:
        """The resource's full name and key settings, known without asking Google."""
        return self.expected().location

    def pending(self) -> str | None:
        """Why the resource cannot exist yet (so it will be created, without asking), else None."""
        if self.env.api_pending(self.api):
            return f"after enabling {self.api}"
        return None

    def check(self) -> Check:
        if self.cloud and self.env.gate.reason:
            return Check(Action.UNKNOWN, self.describe(), why=self.env.gate.reason)
        why = self.pending()
        if why:
            return Check(Action.CREATE, f"{self.describe()} ({why})")
        result = guarded(self.env, self.title, self._check)
        if isinstance(result, Unchecked):
            return Check(Action.UNKNOWN, self.describe(), why=result.text)
        return result

    def apply(self, check: Check) -> Resource:
        return google_call(self.title, lambda: self._apply(check))

    def wait_operation(self, operation: Any, what: str) -> Any:
        """Wait for a google.api_core long-running operation, telling the spinner."""
        self.env.notify(f"waiting for {what}")
        return operation.result(timeout=self.env.operation_timeout)


class Verdict(enum.StrEnum):
    DELETE = "will delete"
    KEEP = "keep"
    ABSENT = "absent"
    UNKNOWN = "not checked"


@dataclass
class Finding:
    verdict: Verdict
    detail: str = ""
    cost: str = ""  # what keeps costing money when kept
    data: Any = None  # what the check found, for run()
    why: str = ""  # why it could not be checked (verdict UNKNOWN)


class TeardownItem:
    """Base of every thing teardown deletes (or keeps)."""

    key: str = ""  # the state's resource key
    title: str = ""
    removes: tuple[str, ...] = ()  # state records that go with it
    cloud: bool = True
    acts_when_kept: bool = False  # keeping it takes an action (see _keep)

    def __init__(self, env: GcpEnv, *, delete_data: bool) -> None:
        self.env = env
        self.names = env.names
        self.delete_data = delete_data

    def describe(self) -> str:  # pragma: no cover - every item overrides it
        """The resource's full name, known without asking Google."""
        raise NotImplementedError

    def check(self) -> Finding:
        if self.cloud and self.env.gate.reason:
            return Finding(Verdict.UNKNOWN, self.describe(), why=self.env.gate.reason)
        result = guarded(self.env, self.title, self._check)
        if isinstance(result, Unchecked):
            return Finding(Verdict.UNKNOWN, self.describe(), why=result.text)
        return result

    def run(self, finding: Finding) -> list[Resource]:
        """Delete (verdict DELETE) or secure what is kept (verdict KEEP); return records to add to the state."""
        if finding.verdict is Verdict.DELETE:
            google_call(self.title, lambda: self._delete(finding))
            return []
        if finding.verdict is Verdict.KEEP:
            return google_call(self.title, lambda: self._keep(finding))
        return []

    def _check(self) -> Finding:  # pragma: no cover - every item overrides it
        raise NotImplementedError

    def _delete(self, finding: Finding) -> None:  # pragma: no cover
        raise NotImplementedError

    def _keep(self, finding: Finding) -> list[Resource]:
        return []

    def _keep_or_delete(self, detail: str, cost: str, data: Any = None) -> Finding:
        if self.delete_data:
            return Finding(Verdict.DELETE, detail, data=data)
        return Finding(Verdict.KEEP, f"{detail} (kept; --delete-data deletes it)", cost, data)
