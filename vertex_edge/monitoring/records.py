"""Reading captured records back: a window of the newest records, as columns.

Records live in ``dt=YYYY-MM-DD`` partitions (a local folder or ``gs://`` prefix; see
:mod:`vertex_edge.monitoring.sinks`). :func:`read_window` reads only the partitions it needs:
from ``since``'s day for ``--since``, newest day first until ``last`` records for ``--last``.
A line that is not a record (a file being written, a truncated upload) is skipped and counted.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from vertex_edge.errors import DataError
from vertex_edge.gcp.files import Files, join
from vertex_edge.monitoring.features import FEATURES

log = logging.getLogger(__name__)

_DAY = "dt="


@dataclass
class Window:
    """Captured records as columns (row i of every array is one record)."""

    request_id: list[str]
    instance: np.ndarray
    time: list[str]
    model_version: list[str]
    class_id: np.ndarray
    confidence: np.ndarray
    entropy: np.ndarray
    ood_score: np.ndarray  # NaN where the model had no OOD detector
    ood_flag: np.ndarray  # bool
    features: np.ndarray  # [n, F], NaN where absent
    embedding: np.ndarray  # [n, k]
    skipped: int = 0
    files: int = 0
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.request_id)

    @property
    def versions(self) -> Counter[str]:
        return Counter(self.model_version)

    @property
    def first(self) -> str | None:
        return self.time[0] if self.time else None

    @property
    def last(self) -> str | None:
        return self.time[-1] if self.time else None

    def select(self, mask: np.ndarray) -> Window:
        idx = np.flatnonzero(mask)
        pick = idx.tolist()
        return Window(
            request_id=[self.request_id[i] for i in pick], instance=self.instance[idx], time=[self.time[i] for i in pick],
            model_version=[self.model_version[i] for i in pick], class_id=self.class_id[idx],
            confidence=self.confidence[idx], entropy=self.entropy[idx], ood_score=self.ood_score[idx],
            ood_flag=self.ood_flag[idx], features=self.features[idx], embedding=self.embedding[idx],
            skipped=self.skipped, files=self.files, notes=list(self.notes),
        )  # fmt: skip


def to_window(records: list[dict[str, Any]], *, components: int | None = None) -> Window:
    """Columns of ``records`` (sorted by time by the caller)."""
    if components is None:
        components = max((sum(1 for k in r if k.startswith("emb_")) for r in records), default=0)
    nan = math.nan

    def num(record: dict[str, Any], key: str) -> float:
        value = record.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else nan

    return Window(
        request_id=[str(r.get("request_id", "")) for r in records],
        instance=np.array([int(r.get("instance") or 0) for r in records], dtype=np.int64),
        time=[str(r.get("time", "")) for r in records],
        model_version=[str(r.get("model_version", "")) for r in records],
        class_id=np.array([int(r.get("class_id", -1)) for r in records], dtype=np.int64),
        confidence=np.array([num(r, "confidence") for r in records]),
        entropy=np.array([num(r, "entropy") for r in records]),
        ood_score=np.array([num(r, "ood_score") for r in records]),
        ood_flag=np.array([bool(r.get("ood_flag")) for r in records], dtype=bool),
        features=np.array([[num(r, f) for f in FEATURES] for r in records]).reshape(len(records), len(FEATURES)),
        embedding=np.array([[num(r, f"emb_{i}") for i in range(components)] for r in records]).reshape(
            len(records), components
        ),
    )


def parse_time(value: str) -> datetime:
    """A record's ``time`` (ISO 8601, UTC)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def parse_lines(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """(records, lines skipped) of JSONL bytes."""
    out, skipped = [], 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            skipped += 1
            continue
        if isinstance(record, dict) and "request_id" in record and "time" in record:
            out.append(record)
        else:
            skipped += 1
    return out, skipped


def list_partitions(uri: str, files: Files) -> dict[str, list[str]]:
    """``{"dt=YYYY-MM-DD": [file names relative to uri, sorted]}``."""
    days: dict[str, list[str]] = {}
    for name in files.listdir(uri):
        day = name.split("/", 1)[0]
        if day.startswith(_DAY) and name.endswith(".jsonl"):
            days.setdefault(day, []).append(name)
    return {day: sorted(names) for day, names in sorted(days.items())}


def read_records(
    uri: str, files: Files, *, since: datetime | None = None, last: int | None = None, version: str | None = None
) -> tuple[list[dict[str, Any]], int, int, Counter[str]]:
    """(records sorted by time, lines skipped, files read, records of other versions) from ``since``
    on, or the newest ``last``; only model ``version``'s records when it is given."""
    days = list_partitions(uri, files)
    if since is not None:
        first_day = since.astimezone(UTC).strftime(f"{_DAY}%Y-%m-%d")
        days = {d: n for d, n in days.items() if d >= first_day}
    records: list[dict[str, Any]] = []
    others: Counter[str] = Counter()
    skipped = read = 0
    for day in sorted(days, reverse=True):
        for name in days[day]:
            found, bad = parse_lines(files.read_bytes(join(uri, name)))
            if version is not None:
                others.update(str(r.get("model_version")) for r in found if r.get("model_version") != version)
                found = [r for r in found if r.get("model_version") == version]
            records.extend(found)
            skipped += bad
            read += 1
        if last is not None and since is None and len(records) >= last:
            break
    if since is not None:
        cutoff = since.astimezone(UTC)
        records = [r for r in records if _after(r, cutoff)]
    records.sort(key=lambda r: (str(r.get("time")), str(r.get("request_id")), int(r.get("instance") or 0)))
    if last is not None:
        records = records[-last:]
    return records, skipped, read, others


def _after(record: dict[str, Any], cutoff: datetime) -> bool:
    try:
        return parse_time(str(record["time"])) >= cutoff
    except ValueError:
        return False


def read_window(
    uri: str, files: Files, *, since: datetime | None = None, last: int | None = None, model_version: str | None = None
) -> Window:
    """The window to monitor; records of other model versions are left out (and said so)."""
    records, skipped, read, others = read_records(uri, files, since=since, last=last, version=model_version)
    if read == 0:
        raise DataError(
            f"no captured records under {uri}",
            hint="is the prediction server capturing (EDGE_CAPTURE_URI)? send traffic: 'python edge.py monitor simulate'",
        )
    notes = []
    if others:
        notes.append(
            f"{sum(others.values())} records of other model versions left out "
            f"({', '.join(f'{v}: {n}' for v, n in others.most_common(3))})"
        )
    if skipped:
        notes.append(f"{skipped} lines that are not records were skipped")
    window = to_window(records)
    window.skipped, window.files, window.notes = skipped, read, notes
    return window
