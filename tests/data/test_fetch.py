"""Seeding: mirror copies, downloads, checksum rules, nothing partial left behind."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from tests.synthetic import make_dataset
from vertex_edge.data.fetch import seed_files, verify
from vertex_edge.data.manifest import load_manifest
from vertex_edge.errors import ChecksumError, DataError, DownloadError


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    folder = tmp_path / "mirror"
    make_dataset(folder, n_train=30, n_test=10)
    return folder


def test_copies_from_mirror_then_keeps(mirror: Path, tmp_path: Path) -> None:
    manifest = load_manifest(mirror / "manifest.yaml")
    dest = tmp_path / "data"
    first = seed_files(manifest, dest, mirror=mirror)
    assert [o.action for o in first] == ["copied"] * 4
    second = seed_files(manifest, dest, mirror=mirror)
    assert [o.action for o in second] == ["kept"] * 4


def test_regzipped_file_accepted_by_uncompressed_md5(mirror: Path, tmp_path: Path) -> None:
    manifest = load_manifest(mirror / "manifest.yaml")
    spec = manifest.files[0]
    raw = gzip.decompress((mirror / spec.name).read_bytes())
    regz = tmp_path / spec.name
    regz.write_bytes(gzip.compress(raw, compresslevel=1, mtime=12345))
    assert hashlib.md5(regz.read_bytes()).hexdigest() != spec.md5
    v = verify(regz, spec)
    assert v.ok and v.matched == "uncompressed"


def test_checksum_mismatch_names_file_expected_and_actual(mirror: Path, tmp_path: Path) -> None:
    manifest = load_manifest(mirror / "manifest.yaml")
    spec = manifest.files[1]
    (mirror / spec.name).write_bytes(gzip.compress(b"something else entirely"))
    dest = tmp_path / "data"
    with pytest.raises(ChecksumError) as err:
        seed_files(manifest, dest, mirror=mirror)
    msg = err.value.message
    assert spec.name in msg and spec.md5 in msg and spec.md5_uncompressed in msg
    assert hashlib.md5((mirror / spec.name).read_bytes()).hexdigest() in msg
    assert not (dest / spec.name).exists()
    assert [p.name for p in dest.iterdir() if p.name.startswith(".")] == []  # no partial files


def test_truncated_file_is_refused(mirror: Path, tmp_path: Path) -> None:
    manifest = load_manifest(mirror / "manifest.yaml")
    spec = manifest.files[0]
    data = (mirror / spec.name).read_bytes()
    (mirror / spec.name).write_bytes(data[: len(data) // 2])
    dest = tmp_path / "data"
    with pytest.raises(ChecksumError, match=rf"{spec.name}: not a complete gzip file"):
        seed_files(manifest, dest, mirror=mirror)
    assert sorted(p.name for p in dest.iterdir()) == []


def test_corrupt_existing_file_is_fetched_again(mirror: Path, tmp_path: Path) -> None:
    manifest = load_manifest(mirror / "manifest.yaml")
    dest = tmp_path / "data"
    seed_files(manifest, dest, mirror=mirror)
    (dest / manifest.files[2].name).write_bytes(b"garbage")
    outcomes = seed_files(manifest, dest, mirror=mirror)
    assert [o.action for o in outcomes] == ["kept", "kept", "copied", "kept"]


def test_download_uses_sources_in_order(mirror: Path, tmp_path: Path) -> None:
    manifest = load_manifest(mirror / "manifest.yaml").model_copy(
        update={"sources": ["https://down.example/", "https://up.example/data"]}
    )
    calls: list[str] = []

    def fetch(url: str, dest: Path, progress) -> None:  # noqa: ANN001
        calls.append(url)
        if url.startswith("https://down.example/"):
            raise DownloadError(f"cannot download {url}: refused")
        dest.write_bytes((mirror / url.rsplit("/", 1)[1]).read_bytes())
        if progress:
            progress(dest.stat().st_size, dest.stat().st_size)

    outcomes = seed_files(manifest, tmp_path / "data", fetch=fetch)
    assert [o.action for o in outcomes] == ["fetched"] * 4
    assert calls[:2] == [
        "https://down.example/train-images-idx3-ubyte.gz",
        "https://up.example/data/train-images-idx3-ubyte.gz",
    ]


def test_all_sources_down_suggests_mirror(mirror: Path, tmp_path: Path) -> None:
    manifest = load_manifest(mirror / "manifest.yaml").model_copy(update={"sources": ["https://down.example/"]})

    def fetch(url: str, dest: Path, progress) -> None:  # noqa: ANN001
        dest.write_bytes(b"partial")
        raise DownloadError(f"cannot download {url}: timed out")

    dest = tmp_path / "data"
    with pytest.raises(DownloadError) as err:
        seed_files(manifest, dest, fetch=fetch)
    assert "EDGE_DATA_MIRROR" in (err.value.hint or "")
    assert list(dest.iterdir()) == []


def test_missing_mirror_folder(tmp_path: Path, mirror: Path) -> None:
    manifest = load_manifest(mirror / "manifest.yaml")
    with pytest.raises(DataError, match="mirror folder .* does not exist"):
        seed_files(manifest, tmp_path / "data", mirror=tmp_path / "nope")


def test_real_manifest_is_valid() -> None:
    manifest = load_manifest(Path(__file__).resolve().parents[2] / "data" / "fashion-mnist.yaml")
    assert [f.count for f in manifest.files] == [60000, 60000, 10000, 10000]
    assert len(manifest.labels) == 10 and manifest.labels[9] == "Ankle boot"
    assert all(s.startswith(("http://", "https://")) for s in manifest.sources)
