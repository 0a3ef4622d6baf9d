"""Fetch the dataset's files (official hosts or a mirror folder), verify, and place them.

Every file is fetched to a temporary file beside its target and renamed only once its
checksum is accepted, so nothing partial is ever left in ``data/``.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import os
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from vertex_edge.data.manifest import DataFile, DatasetManifest
from vertex_edge.errors import ChecksumError, DataError, DownloadError
from vertex_edge.fsutil import file_digest

log = logging.getLogger(__name__)

MIRROR_ENV = "EDGE_DATA_MIRROR"
Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)


class Fetcher(Protocol):
    def __call__(self, url: str, dest: Path, progress: Progress | None) -> None:
        """Write the resource at ``url`` to ``dest`` or raise :class:`DownloadError`."""


def copy_stream(src: BinaryIO, out: BinaryIO, *, total: int | None, progress: Progress | None, chunk: int = 1 << 16) -> None:
    """Copy ``src`` to ``out`` in chunks, reporting (bytes so far, total) after each."""
    done = 0
    while block := src.read(chunk):
        out.write(block)
        done += len(block)
        if progress:
            progress(done, total)


def http_fetch(url: str, dest: Path, progress: Progress | None = None, *, timeout: float = 60.0) -> None:
    """Download ``url`` to ``dest`` with the standard library (no extra dependency)."""
    import urllib.error
    import urllib.request

    if not url.startswith(("http://", "https://")):
        raise DownloadError(f"cannot download {url}: only http(s) sources are allowed")
    req = urllib.request.Request(url, headers={"User-Agent": "vertex-edge-data-seed"})  # noqa: S310 - scheme checked
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as out:  # noqa: S310 - scheme checked
            total = resp.headers.get("Content-Length")
            copy_stream(resp, out, total=int(total) if total and total.isdigit() else None, progress=progress)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot download {url}: {reason}") from None


@dataclass(frozen=True)
class Verification:
    ok: bool
    md5_gz: str
    md5_uncompressed: str | None
    matched: str | None  # "gz" or "uncompressed"
    problem: str | None = None


def verify(path: Path, spec: DataFile) -> Verification:
    """Accept the published MD5 of the .gz, or the MD5 of its decompressed bytes."""
    md5_gz = hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324 - integrity, not security
    if md5_gz == spec.md5:
        return Verification(True, md5_gz, None, "gz")
    try:
        h = hashlib.md5()  # noqa: S324
        with gzip.open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        md5_raw: str | None = h.hexdigest()
        problem = None
    except (EOFError, OSError, zlib.error) as exc:
        md5_raw, problem = None, f"not a complete gzip file ({exc})"
    if md5_raw is not None and spec.md5_uncompressed and md5_raw == spec.md5_uncompressed:
        return Verification(True, md5_gz, md5_raw, "uncompressed")
    return Verification(False, md5_gz, md5_raw, None, problem)


def checksum_error(name: str, spec: DataFile, v: Verification) -> ChecksumError:
    expected = f"md5 {spec.md5} (.gz)"
    if spec.md5_uncompressed:
        expected += f" or md5 {spec.md5_uncompressed} (uncompressed)"
    actual = f"md5 {v.md5_gz} (.gz)"
    if v.md5_uncompressed:
        actual += f", md5 {v.md5_uncompressed} (uncompressed)"
    lead = f"{name}: {v.problem}; " if v.problem else f"{name}: checksum mismatch; "
    return ChecksumError(
        f"{lead}expected {expected}, got {actual}", hint="the file is corrupt or truncated; it was not kept"
    )


@dataclass
class FileOutcome:
    name: str
    action: str  # "kept" (already present and valid), "fetched", "copied"
    source: str
    matched: str | None


def seed_files(
    manifest: DatasetManifest,
    dest_dir: Path,
    *,
    mirror: Path | None = None,
    fetch: Fetcher = http_fetch,
    on_progress: Callable[[DataFile, int, int | None], None] | None = None,
    on_file: Callable[[FileOutcome], None] | None = None,
) -> list[FileOutcome]:
    """Make ``dest_dir`` hold every manifest file, verified. Valid files already there are kept."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    if mirror is not None and not mirror.is_dir():
        raise DataError(
            f"mirror folder {mirror} does not exist",
            hint=f"point --mirror or {MIRROR_ENV} at a folder holding the .gz files",
        )
    outcomes: list[FileOutcome] = []
    for spec in manifest.files:
        target = dest_dir / spec.name
        if target.exists():
            v = verify(target, spec)
            if v.ok:
                outcome = FileOutcome(spec.name, "kept", str(target), v.matched)
                outcomes.append(outcome)
                if on_file:
                    on_file(outcome)
                continue
            log.warning("%s exists but does not verify; fetching it again", target)
        outcome = _fetch_one(manifest, spec, target, mirror=mirror, fetch=fetch, on_progress=on_progress)
        outcomes.append(outcome)
        if on_file:
            on_file(outcome)
    return outcomes


def _fetch_one(
    manifest: DatasetManifest,
    spec: DataFile,
    target: Path,
    *,
    mirror: Path | None,
    fetch: Fetcher,
    on_progress: Callable[[DataFile, int, int | None], None] | None,
) -> FileOutcome:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        progress = (lambda done, total: on_progress(spec, done, total)) if on_progress else None
        if mirror is not None:
            source = mirror / spec.name
            if not source.is_file():
                raise DataError(f"{spec.name} is not in the mirror folder {mirror}")
            _copy(source, tmp, progress)
            action, where = "copied", str(source)
        else:
            if not manifest.sources:
                raise DownloadError(f"{spec.name}: the manifest lists no sources and no mirror was given")
            errors = []
            for base in manifest.sources:
                url = base.rstrip("/") + "/" + spec.name
                try:
                    fetch(url, tmp, progress)
                    break
                except DownloadError as exc:
                    errors.append(exc.message)
            else:
                raise DownloadError(
                    f"{spec.name}: every source failed: " + "; ".join(errors),
                    hint=f"on a machine without internet, set {MIRROR_ENV} (or --mirror) to a folder holding the files",
                )
            action, where = "fetched", url
        v = verify(tmp, spec)
        if not v.ok:
            raise checksum_error(spec.name, spec, v)
        os.replace(tmp, target)
        return FileOutcome(spec.name, action, where, v.matched)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _copy(source: Path, dest: Path, progress: Progress | None) -> None:
    total = source.stat().st_size
    with open(source, "rb") as src, open(dest, "wb") as out:
        copy_stream(src, out, total=total, progress=progress)


def dvc_tracked_md5(dvc_file: Path) -> str | None:
    """The md5 a ``.dvc`` file records for its single output, if any."""
    import yaml

    try:
        data = yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}
        return str(data["outs"][0]["md5"])
    except (FileNotFoundError, KeyError, IndexError, TypeError, yaml.YAMLError):
        return None


def needs_tracking(paths: list[Path]) -> list[Path]:
    """The files whose ``.dvc`` file is missing or records another md5."""

    return [p for p in paths if dvc_tracked_md5(p.with_name(p.name + ".dvc")) != file_digest(p)]
