"""Experiment tracking with Sacred: where runs go, and reading them back.

* ``file``  - Sacred's FileStorageObserver under ``<storage root>/experiments`` (the default);
* ``mongo`` - Sacred's MongoObserver, when a MongoDB URL is configured (``EDGE_MONGODB_URL``
  or ``tracking.mongodb_url`` in edge.yaml; a URL with a password only ever comes from env);
* ``off``   - no tracking (``EDGE_OFFLINE=1``, ``--offline`` or ``tracking.enabled: false``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from vertex_edge.errors import TrackingError
from vertex_edge.redact import redact_url

log = logging.getLogger(__name__)

OFFLINE_ENV = "EDGE_OFFLINE"
MONGO_ENV = "EDGE_MONGODB_URL"
EXPERIMENTS_ENV = "EDGE_EXPERIMENTS_DIR"


@dataclass(frozen=True)
class TrackingTarget:
    kind: Literal["file", "mongo", "off"]
    path: Path | None = None
    url: str | None = None
    db: str = "sacred"

    def describe(self) -> str:
        if self.kind == "file":
            return f"Sacred file store {self.path}"
        if self.kind == "mongo":
            return f"MongoDB {redact_url(self.url or '')} (db {self.db})"
        return "tracking off"


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def resolve_tracking(
    *,
    enabled: bool,
    mongodb_url: str | None,
    mongodb_db: str,
    file_store: Path,
    env: Mapping[str, str],
    offline: bool = False,
) -> TrackingTarget:
    """Decide where runs go, from config values and the environment (passed in, not read here)."""
    if offline or truthy(env.get(OFFLINE_ENV)) or not enabled:
        return TrackingTarget("off")
    url = env.get(MONGO_ENV) or mongodb_url
    if url:
        return TrackingTarget("mongo", url=url, db=mongodb_db)
    return TrackingTarget("file", path=Path(env.get(EXPERIMENTS_ENV) or file_store))


def connect_mongo(target: TrackingTarget, *, timeout_ms: int = 3000, client_factory: Any = None) -> Any:
    """A MongoClient that answered a ping, or :class:`TrackingError` naming the (redacted) URL."""
    if client_factory is None:
        import pymongo

        client_factory = pymongo.MongoClient
    try:
        client = client_factory(target.url, serverSelectionTimeoutMS=timeout_ms)
        client.admin.command("ping")
        return client
    except Exception as exc:  # noqa: BLE001 - any driver error means unreachable
        raise TrackingError(
            f"MongoDB at {redact_url(target.url or '')} is not reachable ({type(exc).__name__})",
            hint=f"start it, fix {MONGO_ENV}, or train without tracking: EDGE_OFFLINE=1",
        ) from None


def make_observers(target: TrackingTarget, *, mongo_client: Any = None) -> list[Any]:
    """Sacred observers for ``target``. For mongo, pass a client from :func:`connect_mongo`."""
    if target.kind == "off":
        return []
    if target.kind == "file":
        from sacred.observers import FileStorageObserver

        assert target.path is not None
        return [FileStorageObserver(str(target.path))]
    from sacred.observers import MongoObserver

    return [MongoObserver(client=mongo_client, db_name=target.db)]


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
