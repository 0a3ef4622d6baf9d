"""Files attached after the fact to the Sacred run that made the model (file store and MongoDB),
and never to a run of another store that happens to have the same id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vertex_edge.tracking.attach import attach_files
from vertex_edge.tracking.target import TrackingTarget

SHA = "ab" * 32


def _run_folder(store: Path, run_id: str, sha: str) -> Path:
    folder = store / run_id
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"status": "COMPLETED", "artifacts": ["train_history.csv"]}))
    (folder / "info.json").write_text(json.dumps({"model": {"sha256": sha}}))
    return folder


def _files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "confusion_matrix.png").write_bytes(b"\x89PNG...")
    (tmp_path / "evaluate.json").write_text('{"accuracy": 0.9}')
    return {"confusion_matrix.png": tmp_path / "confusion_matrix.png", "evaluate.json": tmp_path / "evaluate.json",
            "run.json": tmp_path / "evaluate.json", "missing.json": tmp_path / "nope.json"}  # fmt: skip


def test_file_store(tmp_path: Path) -> None:
    store = tmp_path / "experiments"
    folder = _run_folder(store, "3", SHA)
    done = attach_files(TrackingTarget("file", path=store), "3", _files(tmp_path), model_sha256=SHA)
    assert done.run_id == "3" and done.names == ("confusion_matrix.png", "evaluate.json")
    run = json.loads((folder / "run.json").read_text())
    assert run["artifacts"] == ["train_history.csv", "confusion_matrix.png", "evaluate.json"]
    assert run["status"] == "COMPLETED"
    assert (folder / "confusion_matrix.png").read_bytes() == b"\x89PNG..."
    # again (evaluate re-run): replaced, listed once
    attach_files(TrackingTarget("file", path=store), "3", _files(tmp_path), model_sha256=SHA)
    assert json.loads((folder / "run.json").read_text())["artifacts"].count("evaluate.json") == 1
    assert not list(folder.glob(".*.tmp"))


def test_a_run_that_did_not_make_the_model_is_left_alone(tmp_path: Path) -> None:
    store = tmp_path / "experiments"
    folder = _run_folder(store, "3", "cd" * 32)  # a teammate's card names run 3 of THEIR store
    before = (folder / "run.json").read_text()
    done = attach_files(TrackingTarget("file", path=store), "3", _files(tmp_path), model_sha256=SHA)
    assert done.run_id is None and "did not make this model" in done.reason
    assert (folder / "run.json").read_text() == before and not (folder / "evaluate.json").exists()
    assert "is not in" in attach_files(TrackingTarget("file", path=store), "9", {}, model_sha256=SHA).reason
    assert "tracking is off" in attach_files(TrackingTarget("off"), "3", {}, model_sha256=SHA).reason
    assert "names no Sacred run" in attach_files(TrackingTarget("file", path=store), None, {}, model_sha256=SHA).reason


def test_mongodb_gridfs_as_sacred_stores_artifacts(tmp_path: Path) -> None:
    mongomock = pytest.importorskip("mongomock")
    import gridfs
    from mongomock.gridfs import enable_gridfs_integration

    enable_gridfs_integration()
    client = mongomock.MongoClient()
    db = client["sacred"]
    db.runs.insert_one({"_id": 5, "info": {"model": {"sha256": SHA}}, "artifacts": [{"name": "evaluate.json", "file_id": 1}]})
    db.runs.insert_one({"_id": 6, "info": {"model": {"sha256": "cd" * 32}}, "artifacts": []})
    target = TrackingTarget("mongo", url="mongodb://example", db="sacred")
    done = attach_files(target, "5", _files(tmp_path), model_sha256=SHA, mongo_client=client)
    assert done.run_id == "5"
    run = db.runs.find_one({"_id": 5})
    assert [a["name"] for a in run["artifacts"]] == ["confusion_matrix.png", "evaluate.json"]
    stored = gridfs.GridFS(db).get(run["artifacts"][0]["file_id"])
    assert stored.filename == "artifact://runs/5/confusion_matrix.png" and stored.read() == b"\x89PNG..."
    assert attach_files(target, "6", _files(tmp_path), model_sha256=SHA, mongo_client=client).run_id is None
    assert attach_files(target, "7", _files(tmp_path), model_sha256=SHA, mongo_client=client).run_id is None
