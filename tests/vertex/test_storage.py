"""Files at local paths and gs:// URIs (against the GCS emulator), and checkpoints on both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vertex_edge.errors import DataError
from vertex_edge.gcp.files import Files, join, parent, split_gcs
from vertex_edge.vertex.checkpoint import CheckpointStore, fingerprint


def test_uri_helpers() -> None:
    assert join("gs://b/x/", "/model/", "a.json") == "gs://b/x/model/a.json"
    assert join("/tmp/x", "model") == "/tmp/x/model"
    assert parent("gs://b/jobs/x/model/") == "gs://b/jobs/x"
    assert parent("gs://b/model") == "gs://b"
    assert split_gcs("gs://bucket/a/b") == ("bucket", "a/b")
    with pytest.raises(DataError, match="no bucket"):
        split_gcs("gs:///x")


def _roundtrip(files: Files, base: str, tmp_path: Path) -> None:
    files.write_bytes(join(base, "a", "one.txt"), b"one")
    assert files.read_bytes(join(base, "a", "one.txt")) == b"one"
    assert files.exists(join(base, "a", "one.txt")) and not files.exists(join(base, "nope"))
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "x.bin").write_bytes(b"x")
    (src / "sub" / "y.bin").write_bytes(b"y")
    files.upload_tree(src, join(base, "tree"))
    assert files.listdir(join(base, "tree")) == ["sub/y.bin", "x.bin"]
    out = tmp_path / "down"
    assert files.download_tree(join(base, "tree"), out) == ["sub/y.bin", "x.bin"]
    assert (out / "sub" / "y.bin").read_bytes() == b"y"
    files.delete(join(base, "tree", "x.bin"))
    assert files.listdir(join(base, "tree")) == ["sub/y.bin"]
    with pytest.raises(DataError, match="not found"):
        files.read_bytes(join(base, "missing.json"))


def test_local_files(tmp_path: Path) -> None:
    _roundtrip(Files(client_factory=lambda: pytest.fail("no client for local paths")), str(tmp_path / "store"), tmp_path)


def test_gcs_files_on_the_emulator(emulator_files: Files, tmp_path: Path) -> None:
    _roundtrip(emulator_files, "gs://edge-test/files-test", tmp_path)


def _checkpoints(files: Files, base: str, tmp_path: Path) -> None:
    fp = fingerprint('{"epochs": 3}', {"train.npz": "aa"})
    store = CheckpointStore(files, base, fp, tmp_path / "work")
    assert store.latest() is None
    model = tmp_path / "model.keras"
    for epoch in (1, 2, 3):
        model.write_bytes(f"weights after {epoch}".encode())
        store.save(epoch, model, [{"epoch": e, "loss": 1.0 / e} for e in range(1, epoch + 1)])
    assert sorted(n for n in files.listdir(base) if n.endswith(".keras")) == ["epoch-0002.keras", "epoch-0003.keras"]
    latest = store.latest()
    assert latest is not None and latest.epoch == 3 and len(latest.history) == 3
    assert latest.model_file.read_bytes() == b"weights after 3"
    # another run's params or data: not resumed
    other = CheckpointStore(files, base, fingerprint('{"epochs": 4}', {"train.npz": "aa"}), tmp_path / "work2")
    assert other.latest() is None
    index = json.loads(files.read_bytes(join(base, "checkpoint.json")))
    assert index["file"] == "epoch-0003.keras" and index["fingerprint"] == fp


def test_checkpoints_local(tmp_path: Path) -> None:
    _checkpoints(Files(), str(tmp_path / "ckpt"), tmp_path)


def test_checkpoints_on_gcs(emulator_files: Files, tmp_path: Path) -> None:
    _checkpoints(emulator_files, "gs://edge-test/jobs/x/checkpoints/", tmp_path)
