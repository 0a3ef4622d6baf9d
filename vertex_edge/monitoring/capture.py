"""Prediction capture: per-instance records written off the request path, through a bounded queue.

On the request path the server calls :meth:`Capture.offer` with the rows of its answer (the
packed ``probabilities | monitor columns`` array of :class:`~vertex_edge.monitoring.layout.ModelMonitor`):
a sampling draw, a length check and a ``deque.append`` of a reference to rows that already
exist - no record is built, nothing is serialised, nothing waits. When the queue holds
``queue_size`` records, new ones are dropped and counted (:attr:`Capture.dropped`), never a
blocked request. A writer thread wakes every ``flush_s`` seconds (or sooner when ``batch``
records are waiting), builds the records for everything queued with numpy, serialises them
and hands the lines to the :mod:`sink <vertex_edge.monitoring.sinks>`.

A record holds the request id and instance index, the time, the model version, the predicted
class and label, the probabilities, confidence and entropy, the OOD score and flag, the input
summary features and the first embedding components - never the image.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from vertex_edge.envvars import Kind, read_env
from vertex_edge.errors import ConfigError
from vertex_edge.monitoring.features import confidence_entropy
from vertex_edge.monitoring.layout import ModelMonitor
from vertex_edge.monitoring.sinks import Sink, make_sink

log = logging.getLogger(__name__)

try:  # orjson is in the server's image; the standard library does the same, slower
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)
except ImportError:  # pragma: no cover - every environment of this project has orjson

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


#: decimals kept in a record: probabilities, confidence and entropy / the monitor columns
#: (the drift checks round the reference the same way, so rounding creates no difference)
OUTPUT_DECIMALS = 5
COLUMN_DECIMALS = 4

#: a queued request: (request id, time, model, its packed rows, the sampled row indices or None)
Item = tuple[str, float, ModelMonitor, np.ndarray, "np.ndarray | None"]
_CHUNK = 64  # queued requests turned into records between two pauses of the writer thread

#: environment variable -> setting (``edge.py serve`` and deploy set them; see the README)
ENV: dict[str, tuple[str, Kind]] = {
    "EDGE_CAPTURE_URI": ("uri", str),
    "EDGE_CAPTURE_SAMPLE_RATE": ("sample_rate", float),
    "EDGE_CAPTURE_QUEUE": ("queue_size", int),
    "EDGE_CAPTURE_FLUSH_S": ("flush_s", float),
    "EDGE_CAPTURE_ROTATE_MB": ("rotate_mb", float),
    "EDGE_CAPTURE_RETENTION_MB": ("retention_mb", float),
    "EDGE_CAPTURE_RETENTION_DAYS": ("retention_days", float),
}


@dataclass(frozen=True)
class CaptureSettings:
    """Capture settings; ``uri`` None turns capture off."""

    uri: str | None = None
    sample_rate: float = 1.0
    queue_size: int = 10_000
    flush_s: float = 1.0
    batch: int = 1000
    rotate_mb: float = 16.0
    retention_mb: float = 512.0
    retention_days: float = 30.0

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 <= self.sample_rate <= 1.0:
            problems.append(f"EDGE_CAPTURE_SAMPLE_RATE {self.sample_rate}: expected 0..1 (1 = every instance)")
        if not 1 <= self.queue_size <= 1_000_000:
            problems.append(f"EDGE_CAPTURE_QUEUE {self.queue_size}: expected 1..1000000 records")
        if not 0.05 <= self.flush_s <= 3600:
            problems.append(f"EDGE_CAPTURE_FLUSH_S {self.flush_s}: expected 0.05..3600 seconds")
        if not 0 < self.rotate_mb <= self.retention_mb:
            problems.append(
                f"EDGE_CAPTURE_ROTATE_MB {self.rotate_mb} / EDGE_CAPTURE_RETENTION_MB {self.retention_mb}: "
                "expected 0 < rotation <= retention"
            )
        if self.retention_days <= 0:
            problems.append(f"EDGE_CAPTURE_RETENTION_DAYS {self.retention_days}: expected more than 0")
        if problems:
            raise ConfigError("invalid capture settings:\n  - " + "\n  - ".join(problems))

    @property
    def enabled(self) -> bool:
        return bool(self.uri) and self.sample_rate > 0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CaptureSettings:
        return cls(**read_env(env, ENV))

    def sink_options(self) -> dict[str, Any]:
        return {
            "rotate_bytes": int(self.rotate_mb * (1 << 20)),
            "retention_bytes": int(self.retention_mb * (1 << 20)),
            "retention_days": self.retention_days,
        }


class RequestIds:
    """Request ids, ``<10 hex digits>-<hex counter>``: unique across server processes (a random
    prefix per process), about 0.2 us each. The server gives one to every prediction request,
    captured or not (the web app's feedback labels are recorded against it)."""

    def __init__(self) -> None:
        self._prefix = os.urandom(5).hex()
        self._next = itertools.count(1).__next__

    def __call__(self) -> str:
        return f"{self._prefix}-{self._next():x}"


class Capture:
    """The bounded, non-blocking capture queue and its writer thread."""

    def __init__(
        self,
        settings: CaptureSettings,
        sink: Sink,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.clock = clock
        self._random = (rng or random.Random()).random  # noqa: S311 - sampling, not security
        self._queue: deque[Item] = deque()
        self.request_id = RequestIds()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        # counters: each written by one thread only (offer: the event loop; the rest: the writer)
        self.offered = 0  # records accepted into the queue
        self.dropped = 0  # records refused because the queue was full
        self.drained = 0  # records taken out of the queue by the writer
        self.written = 0  # records the sink stored
        self.failed = 0  # records lost because the sink failed

    @classmethod
    def from_settings(cls, settings: CaptureSettings, *, client_factory: Callable[[], Any] | None = None) -> Capture:
        if not settings.uri:
            raise ConfigError("capture needs EDGE_CAPTURE_URI (a folder or gs://bucket/path)")
        return cls(settings, make_sink(settings.uri, client_factory=client_factory, **settings.sink_options()))

    # ------------------------------------------------------------------ request path
    @property
    def pending(self) -> int:
        return self.offered - self.drained

    def offer(self, request_id: str, monitor: ModelMonitor, rows: np.ndarray) -> None:
        """Queue ``rows`` (this request's packed rows) for capture; never blocks, never raises."""
        rate = self.settings.sample_rate
        keep: np.ndarray | None = None
        count = len(rows)
        if rate < 1.0:
            if count == 1:
                if self._random() >= rate:
                    return
            else:
                keep = np.flatnonzero([self._random() < rate for _ in range(count)])
                count = len(keep)
                if not count:
                    return
        if self.offered - self.drained + count > self.settings.queue_size:
            self.dropped += count
            return
        self.offered += count
        self._queue.append((request_id, self.clock(), monitor, rows, keep))
        if self.offered - self.drained >= self.settings.batch:
            self._wake.set()

    def stats(self) -> dict[str, Any]:
        """Counters for the health/metrics route."""
        return {
            "enabled": True,
            "sample_rate": self.settings.sample_rate,
            "queued": self.pending,
            "queue_size": self.settings.queue_size,
            "captured": self.offered,
            "dropped": self.dropped,
            "written": self.written,
            "failed": self.failed,
        }

    # ------------------------------------------------------------------ writer thread
    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="edge-capture", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread and close the sink."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.flush()
        self.sink.close()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.settings.flush_s)
            self._wake.clear()
            self.flush()

    def flush(self) -> int:
        """Write everything queued now (the writer thread calls it); returns records written.

        Records are built and serialised a chunk at a time with a pause between chunks, so the
        event loop gets the GIL back quickly (a long stretch of Python here would stall requests)."""
        items = []
        while self._queue:
            items.append(self._queue.popleft())
        if not items:
            return 0
        count = sum(len(rows) if keep is None else len(keep) for _, _, _, rows, keep in items)
        self.drained += count
        try:
            parts = []
            for start in range(0, len(items), _CHUNK):
                chunk = build_records(items[start : start + _CHUNK], self.settings.sample_rate)
                parts.append(b"".join(_dumps(record) + b"\n" for record in chunk))
                time.sleep(0)  # yield the GIL to the event loop
            self.sink.write(b"".join(parts), items[0][1])
        except Exception as exc:  # noqa: BLE001 - a failing sink loses records, never the server
            self.failed += count
            log.warning("capture: %d records lost: %s", count, getattr(exc, "message", None) or exc)
            return 0
        self.written += count
        return count


def build_records(items: list[Item], sample_rate: float) -> list[dict[str, Any]]:
    """The JSON records of queued items: numpy once per run of items of one model, then one
    dict per record (the writer thread's cost per record is a few microseconds)."""
    records: list[dict[str, Any]] = []
    for _, run in itertools.groupby(items, key=lambda item: id(item[2])):
        group = list(run)
        monitor = group[0][2]
        blocks = [rows if keep is None else rows[keep] for _, _, _, rows, keep in group]
        packed = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
        classes = monitor.classes
        class_id, confidence, entropy = confidence_entropy(packed[:, :classes])
        probs = np.round(packed[:, :classes].astype(np.float64), OUTPUT_DECIMALS).tolist()
        conf = np.round(confidence.astype(np.float64), OUTPUT_DECIMALS).tolist()
        ent = np.round(entropy.astype(np.float64), OUTPUT_DECIMALS).tolist()
        extra = np.round(packed[:, classes:].astype(np.float64), COLUMN_DECIMALS).tolist() if monitor.columns else None
        ids = class_id.tolist()
        flag = monitor.columns.index("ood_flag") if "ood_flag" in monitor.columns else -1
        row = 0
        for request_id, when, _, rows, keep in group:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1000):03d}Z"
            instances = range(len(rows)) if keep is None else keep.tolist()
            for instance in instances:
                k = ids[row]
                record: dict[str, Any] = {
                    "request_id": request_id,
                    "instance": instance,
                    "time": stamp,
                    "model_version": monitor.version,
                    "class_id": k,
                    "label": monitor.labels[k],
                    "confidence": conf[row],
                    "entropy": ent[row],
                    "probabilities": probs[row],
                    "sample_rate": sample_rate,
                }
                if extra is not None:
                    values = extra[row]
                    record.update(zip(monitor.columns, values, strict=True))
                    if flag >= 0:
                        record["ood_flag"] = values[flag] > 0.5
                records.append(record)
                row += 1
    return records
