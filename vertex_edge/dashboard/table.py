"""The runs table: every run's summary joined to the registry, the param keys and those that
differ - as a dict (``edge.py experiments list``) or as the JSON the UI polls.

Built for a thousand runs polled every few seconds: a run the store hands back unchanged (the
same object: the file store caches by mtime) keeps its summary, its param keys and its JSON
fragment; only RUNNING runs (whose status and duration follow the clock), new or changed runs,
and all rows after the registry changed are made again.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vertex_edge.dashboard.lineage import Lineage
from vertex_edge.tracking.runs import summarize

#: Summary fields only a run's own page needs (left out of the table, which is a thousand rows long).
DETAIL_ONLY = ("fail_trace", "artifacts", "latest", "name", "eval_accuracy", "model_version", "vertex_job", "stop",
               "model_sha256", "dvc_baseline", "gate_min_accuracy", "eval_log_loss", "epochs_run", "queued")  # fmt: skip
_MISSING = ("missing",)


def clean(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """Compact JSON; a NaN or infinity becomes null."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:
        return json.dumps(clean(value), separators=(",", ":"), allow_nan=False, default=str)


def value_key(value: Any) -> Any:
    """A hashable stand-in for a param value (typed: True and 1 differ)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return (type(value).__name__, value)
    return json.dumps(value, sort_keys=True, default=str)


def changed_keys(param_keys: list[dict[str, Any]]) -> list[str]:
    """The params whose value is not the same in every run (a run lacking one differs), from each
    run's ``{param: value_key(value)}``. One pass; a key seen with two values is not looked at again."""
    first: dict[str, Any] = {}
    count: dict[str, int] = {}
    changed: set[str] = set()
    for params in param_keys:
        for k, v in params.items():
            if k in changed:
                continue
            if k not in first:
                first[k], count[k] = v, 1
            elif first[k] != v:
                changed.add(k)
            else:
                count[k] += 1
    n = len(param_keys)
    return sorted(changed | {k for k, c in count.items() if k not in changed and c < n})


def param_keys(params: dict[str, Any]) -> dict[str, Any]:
    return {k: value_key(v) for k, v in params.items()}


@dataclass
class _Entry:
    run: dict[str, Any]  # held, so that id(run) is not reused while the entry is cached
    summary: dict[str, Any]
    keys: dict[str, Any]
    fragment: str | None = None  # the row as JSON, for lineage generation ``generation``
    generation: int = -1
    row: dict[str, Any] = field(default_factory=dict)


class RunsTable:
    def __init__(self, lineage: Lineage, dead_after_s: float) -> None:
        self.lineage = lineage
        self.dead_after_s = dead_after_s
        self._entries: dict[int, _Entry] = {}
        self._lock = threading.Lock()

    def row(self, summary: dict[str, Any], *, full: bool = False) -> dict[str, Any]:
        """A summary as the table shows it (``full``: with the fields a run page adds): with the
        registry versions made from the run, and the registry's gate verdict when evaluate's is not attached."""
        row = dict(summary) if full else {k: v for k, v in summary.items() if k not in DETAIL_ONLY}
        links = self.lineage.links(row["id"], row.get("model_sha256"))
        row["registry"] = [link.as_dict() for link in links]
        if row.get("gate_passed") is None and links and links[-1].gate_passed is not None:
            row["gate_passed"] = links[-1].gate_passed
        return row

    def _collect(self, runs: list[dict[str, Any]], now: datetime) -> list[_Entry]:
        self.lineage.refresh()
        generation = self.lineage.generation
        with self._lock:
            old, kept = self._entries, {}
            out = []
            for run in runs:
                entry = old.get(id(run))
                if entry is None or entry.run is not run:
                    summary = summarize(run, now=now, dead_after_s=self.dead_after_s)
                    entry = _Entry(run, summary, param_keys(summary["params"]))
                if entry.generation != generation:
                    entry.row, entry.fragment, entry.generation = self.row(entry.summary), None, generation
                if run.get("status") != "RUNNING":
                    kept[id(run)] = entry
                out.append(entry)
            self._entries = kept
        return out

    def _head(self, entries: list[_Entry], info: dict[str, Any]) -> dict[str, Any]:
        keys = sorted({k for e in entries for k in e.keys})
        return {**info, "registry_note": self.lineage.note, "dead_after_s": self.dead_after_s,
                "param_keys": keys, "changed_keys": changed_keys([e.keys for e in entries])}  # fmt: skip

    def as_dict(
        self, runs: list[dict[str, Any]], now: datetime, info: dict[str, Any], *, full: bool = False
    ) -> dict[str, Any]:
        """The table; ``full``: each run with every field of its summary (``experiments list --json``)."""
        entries = self._collect(runs, now)
        rows = [self.row(e.summary, full=True) for e in entries] if full else [e.row for e in entries]
        return clean({**self._head(entries, info), "runs": rows})

    def as_json(self, runs: list[dict[str, Any]], now: datetime, info: dict[str, Any]) -> str:
        entries = self._collect(runs, now)
        for e in entries:
            if e.fragment is None:
                e.fragment = dumps(e.row)
        head = dumps(self._head(entries, info))
        return head[:-1] + ',"runs":[' + ",".join(e.fragment for e in entries) + "]}"
