"""Where captured records (and feedback labels) go: JSON lines, partitioned by date.

* :class:`LocalSink` - files under a folder (locally: ``<storage root>/monitoring/<model>/records``):
  ``dt=YYYY-MM-DD/<kind>-<HHMMSS>-<pid>-<n>.jsonl``, appended in whole lines, rotated by size and
  age, and a retention limit (total size and age) applied after each rotation, oldest file first.
* :class:`GcsSink` - one object per flush under ``gs://bucket/prefix/dt=YYYY-MM-DD/hour=HH/`` (GCS
  objects cannot be appended to). The ``dt=`` partitions are what BigQuery external tables and
  Vertex AI Model Monitoring read; retention there is a bucket lifecycle rule on the prefix.

A sink's :meth:`write` is called from the capture's writer thread (never on the request path)
with whole lines; it raises on failure and the caller counts the lost records.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from vertex_edge.errors import ConfigError
from vertex_edge.gcp.clients import storage_client
from vertex_edge.gcp.errors import google_call
from vertex_edge.gcp.files import split_gcs

log = logging.getLogger(__name__)

JSONL_TYPE = "application/x-ndjson"


class Sink(Protocol):
    def write(self, lines: bytes, when: float) -> None:
        """Store ``lines`` (whole JSON lines) captured around time ``when`` (epoch seconds)."""

    def close(self) -> None:
        """Finish the current file (if any)."""


def partition(when: float) -> tuple[str, str]:
    """``("dt=YYYY-MM-DD", "hour=HH")`` in UTC."""
    stamp = datetime.fromtimestamp(when, UTC)
    return stamp.strftime("dt=%Y-%m-%d"), stamp.strftime("hour=%H")


class LocalSink:
    """Append-only JSONL files under ``root`` with rotation and retention."""

    def __init__(
        self,
        root: Path,
        *,
        kind: str = "records",
        rotate_bytes: int = 16 << 20,
        rotate_s: float = 3600.0,
        retention_bytes: int = 512 << 20,
        retention_days: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if rotate_bytes < 1 or retention_bytes < rotate_bytes:
            raise ConfigError(
                f"capture rotation at {rotate_bytes} bytes with retention of {retention_bytes} bytes: "
                "expected 0 < rotation <= retention"
            )
        self.root = Path(root)
        self.kind = kind
        self.rotate_bytes = rotate_bytes
        self.rotate_s = rotate_s
        self.retention_bytes = retention_bytes
        self.retention_s = retention_days * 86400.0
        self.clock = clock
        self._file: Any = None
        self._path: Path | None = None
        self._opened = 0.0
        self._day = ""
        self._size = 0
        self._seq = 0
        self.deleted = 0  # files removed by the retention limit

    @property
    def current(self) -> Path | None:
        return self._path

    def _open(self, when: float) -> None:
        day, _ = partition(when)
        folder = self.root / day
        folder.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        stamp = datetime.fromtimestamp(when, UTC).strftime("%H%M%S")
        self._path = folder / f"{self.kind}-{stamp}-{os.getpid()}-{self._seq}.jsonl"
        self._file = open(self._path, "ab")  # noqa: SIM115 - kept open between writes, closed on rotation
        self._opened, self._day, self._size = self.clock(), day, self._path.stat().st_size

    def write(self, lines: bytes, when: float) -> None:
        day, _ = partition(when)
        if self._file is not None and (
            self._size >= self.rotate_bytes or self.clock() - self._opened >= self.rotate_s or day != self._day
        ):
            self.close()
            self.apply_retention()
        if self._file is None:
            self._open(when)
        self._file.write(lines)
        self._file.flush()
        self._size += len(lines)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def apply_retention(self) -> None:
        """Delete the oldest closed files until the total is within the size and age limits."""
        files = sorted(self.root.glob(f"dt=*/{self.kind}-*.jsonl"), key=lambda p: (p.stat().st_mtime, p.name))
        files = [p for p in files if p != self._path or self._file is None]
        total = sum(p.stat().st_size for p in files) + (self._size if self._file is not None else 0)
        now = self.clock()
        for path in files:
            stat = path.stat()
            if total <= self.retention_bytes and now - stat.st_mtime <= self.retention_s:
                break
            path.unlink(missing_ok=True)
            total -= stat.st_size
            self.deleted += 1
            if not any(path.parent.iterdir()):
                path.parent.rmdir()


class GcsSink:
    """One JSONL object per write under ``gs://bucket/prefix/dt=.../hour=.../``."""

    def __init__(self, uri: str, client: Any, *, kind: str = "records", host: str | None = None) -> None:
        self.uri = uri.rstrip("/")
        self.bucket_name, self.prefix = split_gcs(self.uri)
        self.client = client
        self.kind = kind
        self.host = (host or socket.gethostname() or "host").replace("/", "-")[:40]
        self._seq = 0

    def object_name(self, when: float) -> str:
        day, hour = partition(when)
        self._seq += 1
        stamp = datetime.fromtimestamp(when, UTC).strftime("%Y%m%dT%H%M%S.%f")
        name = f"{self.kind}-{stamp}-{self.host}-{os.getpid()}-{self._seq}.jsonl"
        return "/".join(p for p in (self.prefix, day, hour, name) if p)

    def write(self, lines: bytes, when: float) -> None:
        name = self.object_name(when)
        blob = self.client.bucket(self.bucket_name).blob(name)
        google_call(
            f"cannot write gs://{self.bucket_name}/{name}",
            lambda: blob.upload_from_string(lines, content_type=JSONL_TYPE),
        )

    def close(self) -> None:
        return None


def make_sink(
    uri: str, *, kind: str = "records", client_factory: Callable[[], Any] | None = None, **local: Any
) -> Sink:
    """A :class:`GcsSink` for ``gs://`` URIs (client built now, by ``client_factory``), else a
    :class:`LocalSink` (``local`` are its rotation and retention settings)."""
    if uri.startswith("gs://"):
        return GcsSink(uri, (client_factory or storage_client)(), kind=kind)
    if "://" in uri and not uri.startswith("file://"):
        raise ConfigError(f"capture location {uri!r}: expected a folder or gs://bucket/path")
    return LocalSink(Path(uri.removeprefix("file://")), kind=kind, **local)
