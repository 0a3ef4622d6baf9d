"""Where Sacred runs go (reading them back: :mod:`vertex_edge.tracking.runs`).

* ``file``  - Sacred's FileStorageObserver under ``<storage root>/experiments`` (the default);
* ``mongo`` - Sacred's MongoObserver, when a MongoDB URL is configured (``EDGE_MONGODB_URL``
  or ``tracking.mongodb_url`` in edge.yaml; a URL with a password only ever comes from env);
* ``off``   - no tracking (``EDGE_OFFLINE=1``, ``--offline`` or ``tracking.enabled: false``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
