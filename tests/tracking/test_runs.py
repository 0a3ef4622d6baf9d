"""Reading runs back (vertex_edge.tracking.runs): the file store and its cache, files caught
half-written, MongoDB with GridFS artifacts (mongomock), the displayed status, the summary."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mongomock
import mongomock.gridfs
import pytest

from tests.dashboard.runs_fixture import T0, params, write_mongo_run, write_run
from vertex_edge.tracking.runs import (
    DEAD_AFTER_S,
    FileExperimentStore,
    MongoExperimentStore,
    artifact_role,
    display_status,
    flatten,
    parse_time,
    summarize,
)


def test_file_store_reads_runs_in_id_order_and_skips_other_folders(tmp_path: Path) -> None:
    for i in (10, 2, 1):
        write_run(tmp_path, i)
    (tmp_path / "_sources").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    runs = FileExperimentStore(tmp_path).list_runs()
    assert [r["_id"] for r in runs] == ["1", "2", "10"]
    assert runs[0]["config"]["epochs"] == 4 and runs[0]["info"]["dvc"]["experiment"] is None
    assert runs[0]["_evaluation"]["passed"] is True and runs[0]["_problems"] == []


def test_get_run_adds_captured_output_and_reads_artifacts_by_listed_name_only(tmp_path: Path) -> None:
    write_run(tmp_path, 1)
    (tmp_path / "1" / "secret.txt").write_text("not an artifact")
    store = FileExperimentStore(tmp_path)
    run = store.get_run("1")
    assert run is not None and "epoch 4/4" in run["captured_out"]
    assert store.read_artifact("1", "evaluate.json") is not None
    for name in ("secret.txt", "run.json", "../1/run.json", ""):
        assert store.read_artifact("1", name) is None
    assert store.get_run("../1") is None and store.get_run("2") is None


def test_unchanged_runs_come_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_run(tmp_path, 1)
    store = FileExperimentStore(tmp_path)
    first = store.list_runs()[0]
    reads: list[str] = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self.name) or real(self))
    assert store.list_runs()[0] is first and reads == []
    run_json = tmp_path / "1" / "run.json"
    doc = json.loads(run_json.read_text())
    doc["status"] = "INTERRUPTED"
    run_json.write_text(json.dumps(doc))
    os.utime(run_json, ns=(0, 10**18))  # a new mtime, whatever the file system's resolution
    assert store.list_runs()[0]["status"] == "INTERRUPTED" and "run.json" in reads


def test_a_file_caught_half_written_keeps_the_last_good_copy(tmp_path: Path) -> None:
    write_run(tmp_path, 1, status="RUNNING", epochs=2, heartbeat=datetime.now(UTC))
    store = FileExperimentStore(tmp_path, retry_delay_s=0)
    assert store.list_runs()[0]["metrics"]["loss"]["steps"] == [1, 2]
    (tmp_path / "1" / "metrics.json").write_text('{"loss": {"steps": [1, 2, 3')  # the observer mid-write
    (tmp_path / "1" / "run.json").write_text("")
    run = store.list_runs()[0]
    assert run["status"] == "RUNNING" and run["metrics"]["loss"]["steps"] == [1, 2] and run["_problems"] == []
    write_run(tmp_path, 1, status="RUNNING", epochs=3, heartbeat=datetime.now(UTC))  # the write completes
    assert store.list_runs()[0]["metrics"]["loss"]["steps"] == [1, 2, 3]


def test_a_corrupt_file_never_seen_whole_is_retried_then_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_run(tmp_path, 1)
    (tmp_path / "1" / "run.json").write_text('{"status": "COMP')
    sleeps: list[float] = []
    monkeypatch.setattr("vertex_edge.tracking.runs.time.sleep", sleeps.append)
    run = FileExperimentStore(tmp_path).list_runs()[0]
    assert sleeps == [0.02]
    assert run["status"] == "CORRUPT" and run["_problems"][0].startswith("run.json is unreadable (JSONDecodeError")
    assert run["config"]["epochs"] == 4  # what could be read still is


def test_mongo_store_reads_runs_metrics_and_gridfs_artifacts() -> None:
    mongomock.gridfs.enable_gridfs_integration()
    client = mongomock.MongoClient()
    db = client["sacred"]
    write_mongo_run(db, 1, experiment="exp-a")
    write_mongo_run(db, 2, status="RUNNING", epochs=2, start=T0, heartbeat=T0 + timedelta(seconds=5))
    store = MongoExperimentStore(client, "sacred")
    runs = store.list_runs()
    assert [r["_id"] for r in runs] == ["1", "2"]
    assert "captured_out" not in runs[0]  # left out of listings
    assert runs[0]["metrics"]["val_accuracy"]["steps"] == [1, 2, 3, 4]
    assert runs[0]["_evaluation"]["passed"] is True and runs[1]["_evaluation"] is None
    one = store.get_run("1")
    assert one is not None and "epoch 1/4" in one["captured_out"]
    assert store.read_artifact("1", "confusion_matrix.png")[:4] == b"\x89PNG"
    assert store.read_artifact("1", "nope.png") is None and store.read_artifact("9", "x") is None
    summary = summarize(runs[1], now=T0 + timedelta(hours=1))
    assert summary["status"] == "DEAD" and summary["start"] == "2026-11-20T09:00:00Z"
    assert summarize(runs[0])["dvc_experiment"] == "exp-a"


def test_display_status_decides_dead_from_the_heartbeat() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    beat = (now - timedelta(seconds=DEAD_AFTER_S - 1)).replace(tzinfo=None).isoformat()
    assert display_status({"status": "RUNNING", "heartbeat": beat}, now=now) == "RUNNING"
    old = (now - timedelta(seconds=DEAD_AFTER_S + 1)).replace(tzinfo=None).isoformat()
    assert display_status({"status": "RUNNING", "heartbeat": old}, now=now) == "DEAD"
    assert display_status({"status": "RUNNING", "start_time": now.isoformat()}, now=now) == "RUNNING"  # no beat yet
    assert display_status({"status": "RUNNING"}, now=now) == "DEAD"
    assert display_status({"status": "RUNNING", "heartbeat": old}, now=now, dead_after_s=3600) == "RUNNING"
    assert display_status({"status": "COMPLETED", "heartbeat": old}, now=now) == "COMPLETED"
    assert display_status({"status": "QUEUED"}, now=now) == "QUEUED"
    assert display_status({}, now=now) == display_status({"status": "??"}, now=now) == "CORRUPT"


def test_summary_of_a_completed_run(tmp_path: Path) -> None:
    write_run(tmp_path, 3, config=params(**{"augment.shift": 2}), experiment="shift-2", dirty=True)
    s = summarize(FileExperimentStore(tmp_path).list_runs()[0])
    assert s["status"] == "COMPLETED" and s["dvc_experiment"] == "shift-2" and s["dirty"] is True
    assert s["params"]["augment.shift"] == 2 and s["params"]["model.filters"] == [24, 64, 128]
    assert s["epoch"] == 4 and s["epochs_run"] == 4 and s["model_sha256"] == f"{3:064x}"
    assert s["test_accuracy"] == pytest.approx(s["eval_accuracy"]) and s["gate_passed"] is True
    assert s["artifacts"] == ["train_history.csv", "model_card.json", "confusion_matrix.png", "evaluate.json"]


def test_summary_without_info_falls_back_to_sacred_fields() -> None:
    run = {"_id": 1, "status": "COMPLETED", "experiment": {"repositories": [{"commit": "abc", "dirty": True}]},
           "host": {"hostname": "box"}, "metrics": {"test_accuracy": {"steps": [0], "values": [0.5]}}}  # fmt: skip
    s = summarize(run)
    assert (s["commit"], s["dirty"], s["host"], s["test_accuracy"]) == ("abc", True, "box", 0.5)
    assert summarize({"_id": 2, "status": "COMPLETED", "info": "oops"})["status"] == "COMPLETED"


def test_helpers() -> None:
    assert flatten({"b": 1, "a": {"y": True, "x": [1, 2]}, "e": {}}) == {"a.x": [1, 2], "a.y": True, "b": 1, "e": {}}
    assert parse_time("2026-11-20T09:00:00.5") == datetime(2026, 11, 20, 9, 0, 0, 500000, tzinfo=UTC)
    assert parse_time("nope") is None and parse_time(None) is None
    roles = [artifact_role(n) for n in ("train_history.csv", "model_card.json", "confusion_matrix.png",
                                        "confusion.csv", "evaluate.json", "metrics_evaluate.json", "model.onnx")]  # fmt: skip
    assert roles == ["history", "model_card", "confusion_png", "confusion_csv", "evaluation", "evaluation", "other"]


def test_a_document_of_an_unexpected_shape_is_summarized_as_corrupt_with_every_field() -> None:
    class Odd(dict):
        def get(self, key, default=None):  # noqa: ANN001, ANN201 - a document that fails when read
            if key == "config":
                raise RuntimeError("boom")
            return super().get(key, default)

    s = summarize(Odd(_id=3, status="COMPLETED"))
    assert s["status"] == "CORRUPT" and s["problems"] == ["unexpected run document (RuntimeError: boom)"]
    assert set(s) == set(summarize({"_id": 1, "status": "COMPLETED"}))
    assert summarize({"_id": 4, "status": "COMPLETED", "artifacts": "nope"})["artifacts"] == []
