"""One object-storage interface for state, locks and registries.

Two backends share every caller's logic:

* :class:`LocalStore` - a folder; create-if-absent uses ``O_CREAT | O_EXCL``.
* ``GcsStore`` (in :mod:`vertex_edge.gcp.object_store`) - a GCS prefix; create-if-absent uses
  ``if_generation_match=0`` and writes use generation preconditions.

Every object has a *generation* (an integer that changes on each write). A write may name
the generation it expects to replace; ``0`` means "the object must not exist yet".
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vertex_edge.errors import PreconditionFailedError
from vertex_edge.fsutil import atomic_write_bytes


@dataclass(frozen=True)
class StoredObject:
    data: bytes
    generation: int


class ObjectStore(Protocol):
    """Key/value object storage with generation preconditions."""

    def describe(self, key: str = "") -> str:
        """A human-readable location for ``key`` (a path or gs:// URI)."""

    def read(self, key: str) -> StoredObject | None:
        """The object's bytes and generation, or ``None`` if absent."""

    def write(self, key: str, data: bytes, *, if_generation_match: int | None = None) -> int:
        """Write the object; return its new generation.

        ``if_generation_match=0`` creates only if absent; ``N`` replaces only generation N;
        otherwise :class:`PreconditionFailedError`.
        """

    def delete(self, key: str, *, if_generation_match: int | None = None) -> bool:
        """Delete the object; return whether it existed."""

    def exists(self, key: str) -> bool: ...


class LocalStore:
    """An :class:`ObjectStore` in a local folder.

    Generations derive from the inode and nanosecond mtime (a replace-by-rename gives a new inode).
    Create-if-absent is atomic (``O_EXCL``); replace-if-generation is checked then renamed,
    which is safe because every state write happens under the create-exclusive lock; a
    delete-if-generation (how a lock is released or a stale one cleared) moves the object aside
    in one rename before checking it, so it never removes a lock someone else just took.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or ".." in Path(key).parts:
            raise ValueError(f"invalid object key {key!r}")
        return self.root / key

    def describe(self, key: str = "") -> str:
        return str(self._path(key)) if key else str(self.root)

    @staticmethod
    def _generation(st: os.stat_result) -> int:
        # a rename-replaced file has a new inode; mtime covers in-place writes
        return (st.st_mtime_ns ^ (st.st_ino << 1)) or 1

    def read(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
                gen = self._generation(os.fstat(fh.fileno()))
        except FileNotFoundError:
            return None
        return StoredObject(data, gen)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def write(self, key: str, data: bytes, *, if_generation_match: int | None = None) -> int:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        if if_generation_match == 0:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                raise PreconditionFailedError(f"{path} already exists") from None
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
                return self._generation(os.fstat(fh.fileno()))
        if if_generation_match is not None:
            current = self.read(key)
            if current is None or current.generation != if_generation_match:
                raise PreconditionFailedError(
                    f"{path} changed since it was read (expected generation {if_generation_match}, "
                    f"found {current.generation if current else 'none'})"
                )
        atomic_write_bytes(path, data)
        return self._generation(path.stat())

    def delete(self, key: str, *, if_generation_match: int | None = None) -> bool:
        path = self._path(key)
        if if_generation_match is None:
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            return True
        # conditional delete, atomically: move the object aside (one rename: from then on nobody
        # else sees it), then check it is the generation meant; put it back if it is not
        aside = path.with_name(f".{path.name}.{uuid.uuid4().hex}.deleting")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        try:
            if self._generation(os.stat(aside)) == if_generation_match:
                return True
            try:
                os.link(aside, path)  # create-if-absent, same inode and mtime: the same generation
            except FileExistsError:
                pass  # a third writer created a new one meanwhile: it stays, the one moved aside goes
            raise PreconditionFailedError(f"{path} changed since it was read")
        finally:
            aside.unlink(missing_ok=True)
