"""The teardown engine: check every item (read-only, like the setup steps), then delete in
order, removing each state record as its deletion succeeds; a failure stops at once and a
re-run resumes (it re-checks). The items, in reverse order of setup, are listed by
:func:`vertex_edge.provision.gcp.teardown_items`; each lives beside its setup step.

Data (the bucket with the DVC store and the state, the MongoDB volume with the Sacred runs,
the password that opens it) is deleted only with ``--delete-data``; without it, the MongoDB
disk is set to *Retain* so it outlives the cluster, and the plan says what keeps costing
money. APIs stay enabled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vertex_edge.provision.gcp.resource import Finding, TeardownItem, Verdict
from vertex_edge.provision.gcp.state import StateRecorder


@dataclass
class Planned:
    item: TeardownItem
    finding: Finding


def plan_teardown(items: Sequence[TeardownItem]) -> list[Planned]:
    """Check every item; change nothing."""
    return [Planned(item, item.check()) for item in items]


def run_teardown(
    planned: list[Planned],
    recorder: StateRecorder,
    *,
    on_start: Callable[[Planned], None] | None = None,
    on_done: Callable[[Planned, float], None] | None = None,
) -> None:
    """Carry out the plan in order; a failure stops at once (a re-run resumes: it re-checks)."""
    env = recorder.env
    for entry in planned:
        verdict = entry.finding.verdict
        if verdict is Verdict.ABSENT:
            recorder.update(entry.item.removes, [])  # a stale record
            continue
        if verdict is Verdict.UNKNOWN or (verdict is Verdict.KEEP and not entry.item.acts_when_kept):
            continue
        if on_start:
            on_start(entry)
        started = env.clock()
        kept = entry.item.run(entry.finding)
        removes = entry.item.removes if entry.finding.verdict is Verdict.DELETE else ()
        recorder.update(removes, kept)
        if on_done:
            on_done(entry, env.clock() - started)
