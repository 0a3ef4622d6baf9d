"""Files at a URI: a local path (``/gcs/...`` FUSE paths are local paths too) or ``gs://bucket/key``.

The trainer reads its inputs and writes its outputs through :class:`Files`, so the same code
works on Vertex AI (``gs://`` URIs, or Cloud Storage FUSE under ``/gcs/``), against a GCS emulator
(``STORAGE_EMULATOR_HOST``) and on a local folder. ``gs://`` objects go through the
``google-cloud-storage`` client from :func:`vertex_edge.gcp.clients.storage_client`, built on first
use unless one is injected.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vertex_edge.errors import CloudError, DataError
from vertex_edge.fsutil import atomic_dir, atomic_write_bytes
from vertex_edge.gcp.clients import storage_client
from vertex_edge.gcp.errors import google_call, is_not_found

log = logging.getLogger(__name__)

GCS_SCHEME = "gs://"


def is_gcs(uri: str) -> bool:
    return str(uri).startswith(GCS_SCHEME)


def split_gcs(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` -> ``("bucket", "a/b")``."""
    if not is_gcs(uri):
        raise ValueError(f"not a gs:// URI: {uri!r}")
    rest = uri[len(GCS_SCHEME) :]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise DataError(f"{uri!r} has no bucket name: expected gs://<bucket>/<path>")
    return bucket, key


def join(base: str, *parts: str) -> str:
    """Join path parts onto a local path or a ``gs://`` prefix (no doubled slashes)."""
    if is_gcs(base):
        out = base.rstrip("/")
        for part in parts:
            part = part.strip("/")
            if part:
                out = f"{out}/{part}"
        return out
    return str(Path(base, *parts))


def parent(uri: str) -> str:
    """The folder holding ``uri`` (``gs://b/x/model/`` -> ``gs://b/x``)."""
    if is_gcs(uri):
        bucket, key = split_gcs(uri)
        key = key.rstrip("/")
        head = key.rsplit("/", 1)[0] if "/" in key else ""
        return f"{GCS_SCHEME}{bucket}/{head}".rstrip("/")
    return str(Path(uri).parent)


class Files:
    """Read, write, list and copy files at local paths or ``gs://`` URIs."""

    def __init__(self, client: Any = None, *, client_factory: Callable[[], Any] | None = None) -> None:
        self._client = client
        self._factory = client_factory or storage_client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._factory()
        return self._client

    def _blob(self, uri: str) -> Any:
        bucket, key = split_gcs(uri)
        return self.client.bucket(bucket).blob(key)

    def _gcs_call(self, verb: str, uri: str, fn: Callable[[], Any]) -> Any:
        def call() -> Any:
            try:
                return fn()
            except Exception as exc:
                if is_not_found(exc):
                    raise DataError(f"{uri} not found") from None
                raise

        return google_call(f"cannot {verb} {uri}", call)

    # --- single files -----------------------------------------------------------------
    def exists(self, uri: str) -> bool:
        if is_gcs(uri):
            return bool(self._gcs_call("check", uri, lambda: self._blob(uri).exists()))
        return Path(uri).exists()

    def read_bytes(self, uri: str) -> bytes:
        """The file's bytes; :class:`DataError` when it does not exist."""
        if is_gcs(uri):
            return bytes(self._gcs_call("read", uri, lambda: self._blob(uri).download_as_bytes()))
        try:
            return Path(uri).read_bytes()
        except FileNotFoundError:
            raise DataError(f"{uri} not found") from None

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Write a whole file (atomically: a reader sees the old or the new bytes, never half)."""
        if is_gcs(uri):
            self._gcs_call("write", uri, lambda: self._blob(uri).upload_from_string(data))
            return
        atomic_write_bytes(Path(uri), data)

    def download(self, uri: str, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if is_gcs(uri):
            self._gcs_call("download", uri, lambda: self._blob(uri).download_to_filename(str(dest)))
            return dest
        src = Path(uri)
        if not src.is_file():
            raise DataError(f"{uri} not found")
        shutil.copyfile(src, dest)
        return dest

    def upload(self, src: Path, uri: str) -> None:
        if is_gcs(uri):
            self._gcs_call("upload to", uri, lambda: self._blob(uri).upload_from_filename(str(src)))
            return
        dest = Path(uri)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)

    def delete(self, uri: str) -> None:
        if is_gcs(uri):
            try:
                self._gcs_call("delete", uri, lambda: self._blob(uri).delete())
            except DataError:
                pass  # already gone
            except CloudError as exc:
                log.warning("could not delete %s: %s", uri, exc.message)
            return
        Path(uri).unlink(missing_ok=True)

    # --- folders ----------------------------------------------------------------------
    def listdir(self, uri: str) -> list[str]:
        """Names of the files under the folder ``uri`` (recursive, relative, sorted)."""
        if is_gcs(uri):
            bucket, key = split_gcs(uri)
            prefix = key.rstrip("/") + "/" if key.strip("/") else ""
            blobs = self._gcs_call("list", uri, lambda: list(self.client.list_blobs(bucket, prefix=prefix)))
            return sorted(b.name[len(prefix) :] for b in blobs if not b.name.endswith("/"))
        root = Path(uri)
        if not root.is_dir():
            return []
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    def download_tree(self, uri: str, dest: Path) -> list[str]:
        """Copy every file under ``uri`` into the local folder ``dest``; return their names."""
        names = self.listdir(uri)
        for name in names:
            self.download(join(uri, name), dest / name)
        return names

    def upload_tree(self, src: Path, uri: str) -> None:
        """Copy the local folder ``src`` to ``uri``. A local destination is replaced whole and
        atomically; on GCS each object is written whole."""
        if is_gcs(uri):
            for path in sorted(p for p in src.rglob("*") if p.is_file()):
                self.upload(path, join(uri, str(path.relative_to(src))))
            return
        with atomic_dir(Path(uri)) as tmp:
            shutil.copytree(src, tmp, dirs_exist_ok=True)
