"""What the experiments UI and ``edge.py experiments`` show, built from one run store: the runs
table (with the params that differ), one run in full, and a comparison of runs.

Everything returned is JSON-ready (no NaN or infinity: those become ``None``). Nothing here
raises for a corrupt or half-written run; an unknown run id gives ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vertex_edge.dashboard.lineage import Lineage, NoLineage
from vertex_edge.dashboard.reproduce import reproduce_steps
from vertex_edge.dashboard.table import RunsTable, changed_keys, clean, param_keys, value_key
from vertex_edge.tracking.runs import (
    DEAD_AFTER_S,
    EPOCH_METRICS,
    ExperimentStore,
    artifact_role,
    find_artifact,
    metric_series,
    summarize,
)

#: Compared figures: (key, label, which way is better: 1 higher, -1 lower, 0 neither).
COMPARED = (
    ("test_accuracy", "test accuracy", 1),
    ("test_loss", "test loss", -1),
    ("eval_log_loss", "evaluate log loss", -1),
    ("best_val_accuracy", "best val accuracy", 1),
    ("epochs_run", "epochs run", 0),
    ("duration_s", "duration", -1),
)
#: Facts of a run a comparison lines up (key, label).
FACTS = (
    ("status", "status"), ("commit", "git commit"), ("dirty", "uncommitted changes"),
    ("data_version", "data version"), ("dvc_experiment", "DVC experiment"), ("backend", "backend"),
    ("host", "host"), ("start", "started"),
)  # fmt: skip
MAX_COMPARED = 12

MEDIA_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".html": "text/plain; charset=utf-8",
}  # fmt: skip  (HTML is shown as text: never run it)


def media_type(name: str) -> str:
    dot = name.rfind(".")
    return MEDIA_TYPES.get(name[dot:].lower() if dot >= 0 else "", "application/octet-stream")


@dataclass(frozen=True)
class StoreInfo:
    description: str  # "Sacred file store /path" or "MongoDB mongodb://***@host (db sacred)" (no secret)
    target: str  # "local" or "gcp"


class RunsService:
    """The runs of one store, joined to the registry, as the UI and the CLI show them."""

    def __init__(
        self, store: ExperimentStore, info: StoreInfo, lineage: Lineage | None = None, *,
        dead_after_s: float = DEAD_AFTER_S,
    ) -> None:  # fmt: skip
        self.store = store
        self.info = info
        self.lineage = lineage if lineage is not None else NoLineage()
        self.dead_after_s = dead_after_s
        self.runs_table = RunsTable(self.lineage, dead_after_s)

    def _info(self, now: datetime) -> dict[str, Any]:
        return {"store": self.info.description, "target": self.info.target, "generated": now.isoformat()}

    def table(self, *, now: datetime | None = None, full: bool = False) -> dict[str, Any]:
        """Every run (oldest first), the param keys, and those that differ between the runs
        (``full``: every field of each run's summary, not only the table's)."""
        now = now or datetime.now(UTC)
        return self.runs_table.as_dict(self.store.list_runs(), now, self._info(now), full=full)

    def table_json(self, *, now: datetime | None = None) -> str:
        """:meth:`table` as JSON, made from the rows cached since the last call where runs did not change."""
        now = now or datetime.now(UTC)
        return self.runs_table.as_json(self.store.list_runs(), now, self._info(now))

    def detail(self, run_id: str, *, now: datetime | None = None) -> dict[str, Any] | None:
        """One run in full: its row, per-epoch series, artifacts by role, evaluation, reproduce steps."""
        run = self.store.get_run(run_id)
        if run is None:
            return None
        now = now or datetime.now(UTC)
        self.lineage.refresh()
        row = self.runs_table.row(summarize(run, now=now, dead_after_s=self.dead_after_s), full=True)
        series = {}
        for name in (*EPOCH_METRICS, *sorted(set(run.get("metrics") or {}) - set(EPOCH_METRICS))):
            steps, values = metric_series(run, name)
            if steps:
                series[name] = {"steps": steps, "values": values}
        evaluation = run.get("_evaluation") if isinstance(run.get("_evaluation"), dict) else {}
        per_class = evaluation.get("per_class") if isinstance(evaluation.get("per_class"), dict) else {}
        output = run.get("captured_out")
        return clean({
            **row,
            "series": series,
            "artifact_roles": {name: artifact_role(name) for name in row["artifacts"]},
            "confusion_png": find_artifact(run, "confusion_png"),
            "per_class": {str(k): v for k, v in per_class.items() if isinstance(v, dict)},
            "info": run.get("info") or {},
            "config": run.get("config") or {},
            "captured_out": output if isinstance(output, str) else "",
            "reproduce": [s.as_dict() for s in reproduce_steps(row)],
            "registry_note": self.lineage.note,
            "store": self.info.description,
            "dead_after_s": self.dead_after_s,
        })  # fmt: skip

    def compare(self, run_ids: list[str], *, now: datetime | None = None) -> tuple[dict[str, Any] | None, list[str]]:
        """(the comparison, unknown ids). The first run is the baseline the deltas are taken from."""
        now = now or datetime.now(UTC)
        details, missing = [], []
        for run_id in dict.fromkeys(run_ids):  # unique, in order
            d = self.detail(run_id, now=now)
            (details.append(d) if d is not None else missing.append(run_id))
        if missing or not details:
            return None, missing
        keys = sorted({k for d in details for k in d["params"]})
        changed = set(changed_keys([param_keys(d["params"]) for d in details]))
        params = [{"key": k, "values": [d["params"].get(k) for d in details], "differs": k in changed} for k in keys]
        facts = []
        for key, label in FACTS:
            values = [d.get(key) for d in details]
            facts.append(
                {"key": key, "label": label, "values": values, "differs": len({value_key(v) for v in values}) > 1}
            )
        metrics = []
        for key, label, better in COMPARED:
            values = [d.get(key) for d in details]
            base = values[0]
            deltas = [
                round(v - base, 6) if isinstance(v, (int, float)) and isinstance(base, (int, float)) else None
                for v in values
            ]
            metrics.append({"key": key, "label": label, "better": better, "values": values, "deltas": deltas})
        return clean({
            "ids": [d["id"] for d in details], "runs": details, "params": params, "facts": facts, "metrics": metrics,
            "changed_keys": sorted(changed),
        }), []  # fmt: skip

    def artifact(self, run_id: str, name: str) -> tuple[bytes, str] | None:
        """(bytes, media type) of one of the run's artifacts, or None."""
        data = self.store.read_artifact(run_id, name)
        return (data, media_type(name)) if data is not None else None
