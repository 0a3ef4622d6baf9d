"""Reading Sacred runs back, from the file store or MongoDB, and summarizing them for
``edge.py experiments``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol


class ExperimentStore(Protocol):
    def list_runs(self) -> list[dict[str, Any]]: ...

    def get_run(self, run_id: str) -> dict[str, Any] | None: ...


class FileExperimentStore:
    """Reads runs written by Sacred's FileStorageObserver (one folder per run id)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self, folder: Path) -> dict[str, Any] | None:
        try:
            run = json.loads((folder / "run.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        run["_id"] = folder.name
        for name in ("config", "info", "metrics"):
            try:
                run[name] = json.loads((folder / f"{name}.json").read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                run.setdefault(name, {})
        return run

    def list_runs(self) -> list[dict[str, Any]]:
        if not self.path.is_dir():
            return []
        runs = [self._read(p) for p in self.path.iterdir() if p.is_dir() and p.name.isdigit()]
        return sorted((r for r in runs if r), key=lambda r: int(r["_id"]))

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        if not run_id.isdigit():
            return None
        return self._read(self.path / run_id)


class MongoExperimentStore:
    """Reads runs from Sacred's MongoDB collections (``runs`` and ``metrics``)."""

    def __init__(self, client: Any, db: str) -> None:
        self.db = client[db]

    def _with_metrics(self, run: dict[str, Any]) -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        for m in self.db.metrics.find({"run_id": run["_id"]}):
            metrics[m["name"]] = {"steps": m.get("steps", []), "values": m.get("values", [])}
        run["metrics"] = metrics
        run["_id"] = str(run["_id"])
        return run

    def list_runs(self) -> list[dict[str, Any]]:
        return [self._with_metrics(r) for r in self.db.runs.find().sort("_id", 1)]

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        key: Any = int(run_id) if run_id.isdigit() else run_id
        run = self.db.runs.find_one({"_id": key})
        return self._with_metrics(run) if run else None


def summarize(run: dict[str, Any]) -> dict[str, Any]:
    """The columns of ``edge.py experiments list`` for one run."""
    info = run.get("info", {}) or {}
    config = run.get("config", {}) or {}
    exp = run.get("experiment", {}) or {}
    git = info.get("git") or {}
    if not git:
        repos = exp.get("repositories") or []
        if repos:
            git = {"commit": repos[0].get("commit"), "dirty": repos[0].get("dirty")}
    test = info.get("test_metrics") or {}
    return {
        "id": str(run.get("_id")),
        "status": run.get("status", "?"),
        "start": str(run.get("start_time", ""))[:19].replace("T", " "),
        "commit": ((git.get("commit") or "")[:8] + ("+dirty" if git.get("dirty") else "")) or "-",
        "data": (info.get("data_version") or "-")[:8],
        "params": ", ".join(f"{k}={config[k]}" for k in ("epochs", "batch_size", "learning_rate") if k in config),
        "test_accuracy": test.get("accuracy"),
    }
