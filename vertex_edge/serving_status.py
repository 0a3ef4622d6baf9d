"""What the local prediction server says it serves: ``<registry>/<model>/serving-status.json``.

A ``python edge.py serve`` that follows the endpoint writes this file beside ``endpoint.json``::

    {"pid": 4242, "url": "http://127.0.0.1:8080", "serving_version": "2", "target_version": "3",
     "error": "cannot load version 3: ...", "at": "2026-11-24T10:00:03+00:00"}

The server writes it with :func:`write_status` (atomically: a reader never sees half a file) when
it starts following the endpoint, each time it starts loading a new target version, and when that
load succeeds or fails. ``deploy-vertex.py`` reads it after changing the endpoint and waits (bounded) until the server
serves the new version, and fails when the server reports that loading it failed (it keeps the old
one). ``edge.py endpoint describe`` shows it. A missing or unreadable file, or one whose pid is not
a live process, means no server follows the endpoint. Read defensively: the server writes it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from vertex_edge.fsutil import atomic_write_json
from vertex_edge.state import pid_alive

STATUS_FILE = "serving-status.json"
DEFAULT_WAIT_S = 30.0


@dataclass(frozen=True)
class ServingStatus:
    pid: int
    url: str
    serving_version: str | None
    target_version: str | None
    error: str | None
    at: datetime | None

    def describe(self) -> str:
        serving = f"version {self.serving_version}" if self.serving_version else "nothing yet"
        text = f"the server (pid {self.pid}, {self.url or 'no url'}) serves {serving}"
        if self.error:
            text += f"; loading version {self.target_version} failed: {self.error}"
        elif self.target_version and self.target_version != self.serving_version:
            text += f"; loading version {self.target_version}"
        return text


def status_path(endpoint_file: Path) -> Path:
    """Where the server following ``endpoint_file`` reports (beside it)."""
    return Path(endpoint_file).parent / STATUS_FILE


def write_status(
    endpoint_file: Path,
    *,
    url: str,
    serving_version: str | None,
    target_version: str | None,
    error: str | None = None,
    pid: int | None = None,
) -> None:
    """Report what this server serves and what it is loading (the server side of this module)."""
    atomic_write_json(
        status_path(endpoint_file),
        {"pid": os.getpid() if pid is None else pid, "url": url, "serving_version": serving_version,
         "target_version": target_version, "error": error,
         "at": datetime.now(UTC).replace(microsecond=0).isoformat()},
    )  # fmt: skip


def _version(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def read_status(model_root: Path, *, alive: Callable[[int], bool] = pid_alive) -> ServingStatus | None:
    """The status a live server wrote; None when there is none (no file, unreadable, dead pid)."""
    try:
        data = json.loads((Path(model_root) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        pid = int(data.get("pid"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not alive(pid):
        return None
    error = data.get("error")
    return ServingStatus(
        pid=pid, url=str(data.get("url") or ""), serving_version=_version(data.get("serving_version")),
        target_version=_version(data.get("target_version")), error=str(error) if error else None,
        at=_time(data.get("at")),
    )  # fmt: skip


def remove_status(endpoint_file: Path, *, pid: int | None = None) -> None:
    """Remove the status ``pid`` (default: this process) wrote, on its shutdown; another server's
    status is left alone."""
    path = status_path(endpoint_file)
    status = read_status(path.parent)
    if status is not None and status.pid == (os.getpid() if pid is None else pid):
        path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Outcome:
    """How the server took a deployment of ``version``."""

    kind: Literal["serving", "failed", "no-server", "not-following", "timeout"]
    version: str
    status: ServingStatus | None = None

    @property
    def ok(self) -> bool:
        return self.kind in ("serving", "no-server", "not-following")

    def text(self) -> str:
        s = self.status
        if self.kind == "no-server":
            return f"no server is following this endpoint; 'python edge.py serve' will serve version {self.version}"
        assert s is not None
        where = f"pid {s.pid}" + (f", {s.url}" if s.url else "")
        if self.kind == "serving":
            return f"the server ({where}) now serves version {self.version}"
        if self.kind == "not-following":
            return (f"a server ({where}) serves version {s.serving_version} and does not follow the endpoint "
                    f"(--version/--no-follow): restart it to serve version {self.version}")  # fmt: skip
        if self.kind == "failed":
            return (f"the server ({where}) could not load version {self.version} and still serves version "
                    f"{s.serving_version}: {s.error}")  # fmt: skip
        return (f"the server ({where}) has not reported serving version {self.version} yet; it reports: "
                f"{s.describe()}")  # fmt: skip


def judge_status(status: ServingStatus | None, version: str, *, since: datetime | None) -> Outcome | None:
    """The outcome the status shows for ``version``, or None while the server is still at it.
    A status older than ``since`` (the endpoint change) says nothing about this deployment."""
    if status is None:
        return Outcome("no-server", version)
    if status.target_version is None:
        return Outcome("not-following", version, status)
    fresh = since is None or (status.at is not None and status.at >= since.replace(microsecond=0))
    if status.serving_version == version and (status.target_version == version or fresh):
        return Outcome("serving", version, status)
    if status.error and status.target_version == version and fresh:
        return Outcome("failed", version, status)
    return None


def wait_for_version(
    model_root: Path,
    version: str,
    *,
    since: datetime | None,
    timeout_s: float = DEFAULT_WAIT_S,
    poll_s: float = 0.2,
    read: Callable[[Path], ServingStatus | None] = read_status,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Wait until the server following ``model_root``'s endpoint serves ``version`` or reports that
    it failed to load it; at most ``timeout_s`` seconds (0: look once)."""
    deadline = clock() + max(0.0, timeout_s)
    while True:
        status = read(model_root)
        outcome = judge_status(status, version, since=since)
        if outcome is not None:
            return outcome
        if clock() >= deadline:
            return Outcome("timeout", version, status)
        sleep(poll_s)
