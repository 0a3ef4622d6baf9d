"""The provisioning engine shared by the local and gcp targets.

A :class:`Step` checks one resource and creates or updates it. :func:`plan` checks every
step without changing anything; :func:`apply` runs the plan in order, re-checking each step
that was not there (so a re-run after a failure resumes), and reports each step through a
callback (the CLI prints one progress line per step).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from vertex_edge.errors import EdgeError
from vertex_edge.state import Resource, StateStore


class Action(enum.StrEnum):
    KEEP = "keep"  # exists, nothing to do
    CREATE = "create"
    UPDATE = "update"
    UNKNOWN = "not checked"  # could not be checked (e.g. the cloud is unreachable)

    def describe(self) -> str:
        return {
            Action.KEEP: "exists, keep",
            Action.CREATE: "will create",
            Action.UPDATE: "will update",
            Action.UNKNOWN: "not checked",
        }[self]


@dataclass
class Check:
    action: Action
    detail: str = ""  # the resource's full name and key settings, or what changes
    resource: Resource | None = None  # what exists now, when action is KEEP
    why: str = ""  # why it could not be checked (action UNKNOWN), when ``detail`` does not say it


class Step(Protocol):
    key: str  # the state's resource key
    title: str  # shown to the user

    def expected(self) -> Resource:
        """The resource as the state records it once the step has run."""

    def check(self) -> Check: ...

    def apply(self, check: Check) -> Resource: ...


@dataclass
class PlanItem:
    step: Step
    check: Check


@dataclass
class StepResult:
    step: Step
    action: Action
    resource: Resource | None
    seconds: float
    detail: str = ""


@dataclass
class Report:
    results: list[StepResult] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(r.action in (Action.CREATE, Action.UPDATE) for r in self.results)


def plan(steps: Sequence[Step]) -> list[PlanItem]:
    """Check every step; change nothing."""
    return [PlanItem(step, step.check()) for step in steps]


def apply(
    items: Sequence[PlanItem],
    *,
    on_start: Callable[[PlanItem], None] | None = None,
    on_done: Callable[[StepResult], None] | None = None,
    recheck: bool = True,
) -> Report:
    """Run ``items`` in order. A step that was missing is re-checked before it is created,
    so a re-run after a partial failure resumes where it stopped."""
    report = Report()
    for item in items:
        if on_start:
            on_start(item)
        started = time.monotonic()
        check = item.check
        if recheck and check.action is not Action.KEEP:
            check = item.step.check()
        if check.action is Action.UNKNOWN:
            raise EdgeError(f"{item.step.title}: cannot be checked: {check.why or check.detail}")
        if check.action is Action.KEEP:
            resource = check.resource
        else:
            resource = item.step.apply(check)
        result = StepResult(item.step, check.action, resource, time.monotonic() - started, check.detail)
        report.results.append(result)
        if on_done:
            on_done(result)
    return report


def apply_locked(
    items: Sequence[PlanItem],
    store: StateStore,
    *,
    before_lock: int,
    command: str,
    on_start: Callable[[PlanItem], None] | None = None,
    on_done: Callable[[StepResult], None] | None = None,
) -> Report:
    """Apply the first ``before_lock`` items (what holds the lock: the storage root, the bucket),
    then the rest under the state lock - the one order both targets use."""
    report = apply(items[:before_lock], on_start=on_start, on_done=on_done)
    with store.lock(command):
        report.results += apply(items[before_lock:], on_start=on_start, on_done=on_done).results
    return report
