"""The capture queue: records, sampling, overflow (never blocking), the writer thread, failures."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import pytest

from tests.synthetic import LABELS
from vertex_edge.errors import ConfigError
from vertex_edge.monitoring.capture import Capture, CaptureSettings
from vertex_edge.monitoring.features import FEATURES
from vertex_edge.monitoring.layout import ModelMonitor, layout_columns
from vertex_edge.monitoring.sinks import LocalSink

COLUMNS = layout_columns(2)
MONITOR = ModelMonitor("v7", tuple(LABELS), ("probabilities", "monitor"), COLUMNS, threshold=1.0)


def rows(n: int, cls: int = 3) -> np.ndarray:
    """Packed rows: probabilities (class ``cls`` at 0.9) | ood score, flag | features | 2 components."""
    out = np.zeros((n, 10 + len(COLUMNS)), np.float32)
    out[:, :10] = 0.1 / 9
    out[:, cls] = 0.9
    out[:, 10:12] = (2.5, 1.0)
    out[:, 12 : 12 + len(FEATURES)] = np.arange(len(FEATURES))
    return out


class ListSink:
    def __init__(self, fail: bool = False) -> None:
        self.lines: list[dict] = []
        self.fail = fail

    def write(self, lines: bytes, when: float) -> None:
        if self.fail:
            raise OSError("disk full")
        self.lines += [json.loads(line) for line in lines.splitlines()]

    def close(self) -> None:
        pass


def test_a_record_holds_the_prediction_and_summaries_never_the_image() -> None:
    sink = ListSink()
    capture = Capture(CaptureSettings(uri="x"), sink, clock=lambda: 1_796_000_000.25)
    rid = capture.request_id()
    capture.offer(rid, MONITOR, rows(2))
    assert capture.flush() == 2
    first = sink.lines[0]
    assert first["request_id"] == rid and [r["instance"] for r in sink.lines] == [0, 1]
    assert first["time"] == "2026-11-30T00:53:20.250Z"
    assert (first["model_version"], first["class_id"], first["label"]) == ("v7", 3, "Dress")
    assert first["confidence"] == pytest.approx(0.9) and first["entropy"] > 0
    assert len(first["probabilities"]) == 10
    assert first["ood_score"] == 2.5 and first["ood_flag"] is True
    assert [first[name] for name in FEATURES] == list(range(len(FEATURES)))
    assert {"emb_0", "emb_1"} <= set(first)
    assert not {"image", "instances", "pixels", "b64"} & set(first)


def test_request_ids_are_unique_and_share_the_process_prefix() -> None:
    capture = Capture(CaptureSettings(uri="x"), ListSink())
    ids = [capture.request_id() for _ in range(1000)]
    assert len(set(ids)) == 1000 and len({i.split("-")[0] for i in ids}) == 1
    assert Capture(CaptureSettings(uri="x"), ListSink()).request_id().split("-")[0] != ids[0].split("-")[0]


def test_sampling_keeps_about_the_rate_and_names_the_kept_instances() -> None:
    sink = ListSink()
    capture = Capture(CaptureSettings(uri="x", sample_rate=0.25), sink, rng=random.Random(1))
    for _ in range(2000):
        capture.offer(capture.request_id(), MONITOR, rows(1))
    capture.offer("batch", MONITOR, rows(40))
    capture.flush()
    singles = [r for r in sink.lines if r["request_id"] != "batch"]
    assert 400 <= len(singles) <= 600
    kept = [r["instance"] for r in sink.lines if r["request_id"] == "batch"]
    assert 0 < len(kept) < 40 and kept == sorted(set(kept))
    assert all(r["sample_rate"] == 0.25 for r in sink.lines)


def test_a_full_queue_drops_and_counts_and_never_blocks() -> None:
    capture = Capture(CaptureSettings(uri="x", queue_size=10), ListSink())
    started = time.perf_counter()
    for _ in range(15):
        capture.offer(capture.request_id(), MONITOR, rows(1))
    capture.offer("big", MONITOR, rows(5))
    assert time.perf_counter() - started < 0.5
    stats = capture.stats()
    assert (stats["captured"], stats["dropped"], stats["queued"]) == (10, 10, 10)
    capture.flush()
    capture.offer("after", MONITOR, rows(5))
    assert capture.stats()["captured"] == 15 and capture.pending == 5


def test_the_writer_thread_writes_and_stop_flushes_the_rest(tmp_path: Path) -> None:
    settings = CaptureSettings(uri=str(tmp_path), flush_s=0.05)
    capture = Capture.from_settings(settings)
    capture.start()
    for _ in range(30):
        capture.offer(capture.request_id(), MONITOR, rows(1))
    deadline = time.monotonic() + 10
    while capture.written < 30 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert capture.written == 30
    capture.offer(capture.request_id(), MONITOR, rows(3))
    capture.stop()
    lines = [line for path in tmp_path.rglob("*.jsonl") for line in path.read_text().splitlines()]
    assert len(lines) == 33 and capture.stats()["queued"] == 0


def test_a_failing_sink_loses_records_but_not_the_server() -> None:
    capture = Capture(CaptureSettings(uri="x"), ListSink(fail=True))
    capture.offer("r", MONITOR, rows(4))
    assert capture.flush() == 0
    assert capture.stats()["failed"] == 4 and capture.pending == 0


def test_a_model_without_monitor_columns_is_captured_with_output_summaries() -> None:
    sink = ListSink()
    capture = Capture(CaptureSettings(uri="x"), sink)
    plain = ModelMonitor("v1", tuple(LABELS), ("probabilities",))
    capture.offer("r", plain, rows(1)[:, :10])
    capture.flush()
    assert sink.lines[0]["class_id"] == 3 and "ood_score" not in sink.lines[0]


def test_settings_from_the_environment() -> None:
    env = {"EDGE_CAPTURE_URI": "gs://b/records", "EDGE_CAPTURE_SAMPLE_RATE": "0.1", "EDGE_CAPTURE_QUEUE": "50"}
    settings = CaptureSettings.from_env(env)
    assert (settings.uri, settings.sample_rate, settings.queue_size, settings.enabled) == (
        "gs://b/records",
        0.1,
        50,
        True,
    )
    assert not CaptureSettings.from_env({}).enabled
    with pytest.raises(ConfigError, match="EDGE_CAPTURE_SAMPLE_RATE"):
        CaptureSettings.from_env({"EDGE_CAPTURE_SAMPLE_RATE": "2"})
    with pytest.raises(ConfigError, match="EDGE_CAPTURE_QUEUE=.many. is not a whole number"):
        CaptureSettings.from_env({"EDGE_CAPTURE_QUEUE": "many"})


def test_local_sink_is_the_default_for_a_folder(tmp_path: Path) -> None:
    capture = Capture.from_settings(CaptureSettings(uri=str(tmp_path / "records")))
    assert isinstance(capture.sink, LocalSink)
    with pytest.raises(ConfigError, match="EDGE_CAPTURE_URI"):
        Capture.from_settings(CaptureSettings())
