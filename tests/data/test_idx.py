"""IDX parsing and validation on tiny synthetic files made in the test."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from tests.synthetic import make_dataset
from vertex_edge.data import idx
from vertex_edge.data.manifest import load_manifest
from vertex_edge.data.prepare import load_npz, prepare
from vertex_edge.errors import DataError


def _write_raw(path: Path, payload: bytes) -> Path:
    path.write_bytes(gzip.compress(payload))
    return path


def test_round_trip(tmp_path: Path) -> None:
    images = np.arange(5 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(5, 28, 28)
    idx.write_idx(tmp_path / "i.gz", images)
    out = idx.read_images(tmp_path / "i.gz", count=5, shape=(28, 28))
    np.testing.assert_array_equal(out, images)


def test_bad_magic(tmp_path: Path) -> None:
    path = _write_raw(tmp_path / "x.gz", struct.pack(">IIII", 0x00000801, 1, 28, 28) + bytes(784))
    with pytest.raises(DataError, match=r"bad magic number 0x00000801, expected 0x00000803"):
        idx.read_images(path, count=1, shape=(28, 28))


def test_truncated_data(tmp_path: Path) -> None:
    path = _write_raw(tmp_path / "x.gz", struct.pack(">IIII", 0x00000803, 2, 28, 28) + bytes(784 + 10))
    with pytest.raises(DataError, match=r"1568 bytes of data, file has 794 \(truncated\)"):
        idx.read_images(path, count=2, shape=(28, 28))


def test_truncated_gzip(tmp_path: Path) -> None:
    idx.write_idx(tmp_path / "ok.gz", np.zeros((3, 28, 28), np.uint8))
    data = (tmp_path / "ok.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="not a complete gzip file"):
        idx.read_images(tmp_path / "cut.gz", count=3, shape=(28, 28))


def test_corrupt_gzip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    idx.write_idx(tmp_path / "ok.gz", rng.integers(0, 256, (3, 28, 28), dtype=np.uint8))
    data = bytearray((tmp_path / "ok.gz").read_bytes())
    data[20:60] = bytes(40)  # zeroed deflate blocks
    (tmp_path / "bad.gz").write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"bad\.gz: not a complete gzip file"):
        idx.read_images(tmp_path / "bad.gz", count=3, shape=(28, 28))


def test_wrong_count(tmp_path: Path) -> None:
    idx.write_idx(tmp_path / "i.gz", np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(DataError, match="3 images, expected 60000"):
        idx.read_images(tmp_path / "i.gz", count=60000, shape=(28, 28))


def test_wrong_shape(tmp_path: Path) -> None:
    idx.write_idx(tmp_path / "i.gz", np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(DataError, match="images are 32x32, expected 28x28"):
        idx.read_images(tmp_path / "i.gz", count=3, shape=(28, 28))


def test_label_out_of_range(tmp_path: Path) -> None:
    idx.write_idx(tmp_path / "l.gz", np.array([1, 2, 12, 3], np.uint8))
    with pytest.raises(DataError, match=r"label 12 at index 2 is out of range \(expected 0-9"):
        idx.read_labels(tmp_path / "l.gz", count=4, num_classes=10)


def test_prepare_checks_image_label_agreement(tmp_path: Path) -> None:
    manifest_path = make_dataset(tmp_path / "raw", n_train=50, n_test=20)
    # replace the training labels with a file holding fewer labels than images
    idx.write_idx(tmp_path / "raw" / "train-labels-idx1-ubyte.gz", np.zeros(40, np.uint8))
    manifest = load_manifest(manifest_path)
    with pytest.raises(DataError, match="40 labels, expected 50"):
        prepare(manifest, tmp_path / "raw", tmp_path / "out")
    assert not (tmp_path / "out" / "train.npz").exists()


def test_prepare_writes_arrays_and_report(tmp_path: Path) -> None:
    manifest = load_manifest(make_dataset(tmp_path / "raw", n_train=50, n_test=20))
    report = prepare(manifest, tmp_path / "raw", tmp_path / "out")
    assert report["train"]["count"] == 50 and report["test"]["count"] == 20
    assert sum(report["train"]["class_counts"].values()) == 50
    assert 0 < report["train"]["pixel_mean"] < 1
    assert len(report["data_version"]) == 32
    split = load_npz(tmp_path / "out" / "train.npz")
    assert split.images.shape == (50, 28, 28) and split.images.dtype == np.uint8
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == []


def test_parallel_npz_is_a_valid_deterministic_zip(tmp_path: Path) -> None:
    import zipfile
    from concurrent.futures import ThreadPoolExecutor

    from vertex_edge.data.prepare import write_npz

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(12_000, 28, 28), dtype=np.uint8)  # 9.4 MB: three pieces
    labels = rng.integers(0, 10, size=12_000).astype(np.uint8)
    with ThreadPoolExecutor(2) as pool:
        write_npz(tmp_path / "a.npz", {"images": images, "labels": labels}, pool=pool)
    write_npz(tmp_path / "b.npz", {"images": images, "labels": labels})
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert zipfile.ZipFile(tmp_path / "a.npz").testzip() is None
    with np.load(tmp_path / "a.npz") as data:
        np.testing.assert_array_equal(data["images"], images)
        np.testing.assert_array_equal(data["labels"], labels)
