"""Sinks: local rotation and retention; date-partitioned JSONL in a bucket (against the GCS emulator)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vertex_edge.errors import ConfigError
from vertex_edge.gcp.clients import storage_client
from vertex_edge.gcp.files import Files
from vertex_edge.monitoring.records import read_window
from vertex_edge.monitoring.sinks import GcsSink, LocalSink, make_sink

DAY = 1_796_000_000.0  # 2026-11-30T00:53:20Z


def line(i: int, when: str = "2026-11-30T01:00:00.000Z") -> bytes:
    return f'{{"request_id": "r{i}", "instance": 0, "time": "{when}", "model_version": "v", "class_id": 1}}\n'.encode()


def test_rotation_by_size_and_by_day(tmp_path: Path) -> None:
    clock = {"t": DAY}
    sink = LocalSink(tmp_path, rotate_bytes=300, retention_bytes=10_000, clock=lambda: clock["t"])
    for i in range(10):
        sink.write(line(i), DAY)
    files = sorted(tmp_path.rglob("*.jsonl"))
    assert len(files) >= 3 and all(f.stat().st_size <= 300 + len(line(0)) for f in files)
    assert {f.parent.name for f in files} == {"dt=2026-11-30"}
    sink.write(line(99), DAY + 86400)
    assert sink.current is not None and sink.current.parent.name == "dt=2026-12-01"
    sink.close()
    assert sum(len(f.read_text().splitlines()) for f in tmp_path.rglob("*.jsonl")) == 11


def test_rotation_by_age(tmp_path: Path) -> None:
    clock = {"t": DAY}
    sink = LocalSink(tmp_path, rotate_s=60, clock=lambda: clock["t"])
    sink.write(line(1), DAY)
    first = sink.current
    clock["t"] += 61
    sink.write(line(2), DAY + 1)
    assert sink.current != first


def test_retention_deletes_the_oldest_files_first(tmp_path: Path) -> None:
    clock = {"t": DAY}
    sink = LocalSink(tmp_path, rotate_bytes=200, retention_bytes=600, clock=lambda: clock["t"])
    for i in range(40):
        sink.write(line(i), DAY)
        os.utime(sink.current, (clock["t"], clock["t"]))
        clock["t"] += 1
    sink.close()
    files = list(tmp_path.rglob("*.jsonl"))
    assert sum(f.stat().st_size for f in files) <= 600 + 200
    assert sink.deleted > 0
    kept = {json.loads(x)["request_id"] for f in files for x in f.read_text().splitlines()}
    kept = {int(k[1:]) for k in kept}
    assert max(kept) == 39 and min(kept) > 0  # the newest kept, the oldest gone


def test_retention_by_age_removes_empty_day_folders(tmp_path: Path) -> None:
    clock = {"t": DAY}
    sink = LocalSink(tmp_path, rotate_bytes=10, retention_days=1, clock=lambda: clock["t"])
    sink.write(line(1), DAY)
    old = sink.current
    assert old is not None
    os.utime(old, (DAY, DAY))
    clock["t"] = DAY + 3 * 86400
    sink.write(line(2), DAY + 3 * 86400)  # rotates (size), then applies retention
    sink.write(line(3), DAY + 3 * 86400)
    assert not old.exists() and not old.parent.exists()


def test_bad_settings_and_uris_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rotation"):
        LocalSink(tmp_path, rotate_bytes=100, retention_bytes=10)
    with pytest.raises(ConfigError, match="gs://"):
        make_sink("s3://bucket/records")


@pytest.mark.integration
def test_gcs_sink_writes_date_partitioned_jsonl_the_monitor_reads(gcs_emulator: str) -> None:
    client = storage_client(env={"STORAGE_EMULATOR_HOST": gcs_emulator})
    client.create_bucket("edge-monitoring")
    sink = make_sink("gs://edge-monitoring/monitoring/fashion-mnist/records", client_factory=lambda: client)
    assert isinstance(sink, GcsSink)
    sink.write(line(1) + line(2), DAY)
    sink.write(line(3, "2026-12-01T10:00:00.000Z"), DAY + 86400 + 9 * 3600)
    names = sorted(b.name for b in client.list_blobs("edge-monitoring"))
    assert len(names) == 2
    assert names[0].startswith("monitoring/fashion-mnist/records/dt=2026-11-30/hour=00/records-")
    assert names[1].startswith("monitoring/fashion-mnist/records/dt=2026-12-01/hour=09/")
    blob = client.bucket("edge-monitoring").get_blob(names[0])
    assert blob.content_type == "application/x-ndjson"
    window = read_window("gs://edge-monitoring/monitoring/fashion-mnist/records", Files(client), last=2)
    assert window.request_id == ["r2", "r3"] and window.files == 2
