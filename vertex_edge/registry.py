"""The local model registry and the local endpoint's traffic map (what Vertex AI keeps in its
Model Registry and Endpoint resources, on this machine).

Layout under the storage root's ``registry/`` folder::

    <model name>/versions/<N>/model.onnx, model.keras, model_card.json, metadata.json
    <model name>/endpoint.json    traffic map {version: percent} and the deployment history
    <model name>/registry.lock    held while a version is registered or the endpoint changes
    <model name>/serving-status.json  written by a running ``edge.py serve`` (what it really serves)

A version folder is written whole or not at all (:func:`~vertex_edge.fsutil.atomic_dir`);
``endpoint.json`` is written through a :class:`~vertex_edge.storage.LocalStore` with a
generation precondition, under the same create-exclusive lock as the provisioning state.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vertex_edge.artifact import CARD_FILE, MODEL_FILES, ONNX_FILE, SERVED_FILES, ModelArtifact, ModelCard
from vertex_edge.errors import DataError, PreconditionFailedError, RegistryError
from vertex_edge.fsutil import atomic_dir, atomic_write_json
from vertex_edge.state import LockInfo, StateStore, utcnow
from vertex_edge.storage import LocalStore

VERSIONS_DIR = "versions"
ENDPOINT_KEY = "endpoint.json"
LOCK_KEY = "registry.lock"
METADATA_FILE = "metadata.json"
UNLOCK_COMMAND = "python edge.py force-unlock --registry"
_VERSION_RE = re.compile(r"^[1-9][0-9]{0,8}$")


class Deployment(BaseModel):
    """One change of the endpoint's traffic map."""

    model_config = ConfigDict(extra="ignore")

    action: Literal["deploy", "rollback"]
    version: str
    previous: str | None = None
    at: str = Field(default_factory=utcnow)
    by: str = ""
    forced: bool = False  # deployed with --force past the quality gate or the champion check
    note: str = ""  # e.g. why the endpoint was set back


class Endpoint(BaseModel):
    """The local endpoint: which version gets which share of the traffic, and its history."""

    model_config = ConfigDict(extra="ignore")

    name: str
    model: str
    traffic: dict[str, int] = Field(default_factory=dict)
    history: list[Deployment] = Field(default_factory=list)
    updated: str = Field(default_factory=utcnow)

    @property
    def serving_version(self) -> str | None:
        """The version with the largest traffic share (the local server serves that one)."""
        live = {v: p for v, p in self.traffic.items() if p > 0}
        if not live:
            return None
        return max(live, key=lambda v: (live[v], int(v) if v.isdigit() else 0))

    def deployed_stack(self) -> list[str]:
        """Deployed versions, oldest first, replaying the history (a rollback pops one)."""
        stack: list[str] = []
        for entry in self.history:
            if entry.action == "rollback":
                if stack:
                    stack.pop()
                if not stack or stack[-1] != entry.version:
                    stack.append(entry.version)
            elif not stack or stack[-1] != entry.version:
                stack.append(entry.version)
        return stack


@dataclass(frozen=True)
class ModelVersion:
    version: str
    path: Path
    metadata: dict[str, Any]

    @property
    def artifact(self) -> ModelArtifact:
        """The version's model folder (its card validated; :class:`DataError` if it is not readable)."""
        return ModelArtifact.read(self.path, source=f"registry version {self.version}")

    @property
    def card(self) -> ModelCard:
        return self.artifact.card

    @property
    def onnx_sha256(self) -> str | None:
        return ((self.metadata.get("artifacts") or {}).get(ONNX_FILE) or {}).get("sha256")

    @property
    def test_accuracy(self) -> float | None:
        value = (self.metadata.get("metrics") or {}).get("test_accuracy")
        return float(value) if isinstance(value, (int, float)) else None

    def verify(self) -> ModelArtifact:
        """Every file the version's card lists, checked against its sha256 (and the card against
        the metadata): :class:`RegistryError` naming the version and the file when it is corrupt."""
        try:
            artifact = self.artifact
            artifact.verify()
        except DataError as exc:
            raise RegistryError(
                f"version {self.version} is corrupt: {exc.message}",
                hint="it cannot take traffic; deploy another version with 'python deploy-vertex.py --version N'",
            ) from None
        recorded = self.onnx_sha256
        if recorded is not None and recorded != artifact.card.onnx_sha256:
            raise RegistryError(
                f"version {self.version} is corrupt: its model card names model.onnx sha256 "
                f"{artifact.card.onnx_sha256[:12]}..., the registry recorded {recorded[:12]}...",
                hint="it cannot take traffic; deploy another version with 'python deploy-vertex.py --version N'",
            )
        return artifact

    def intact(self) -> bool:
        try:
            self.verify()
        except RegistryError:
            return False
        return True


class LocalRegistry:
    """Versions of one model, and its endpoint, under ``<root>/<model name>``."""

    def __init__(self, root: Path, model_name: str) -> None:
        self.root = Path(root)
        self.model_name = model_name
        self.model_root = self.root / model_name
        self.store = LocalStore(self.model_root)
        self._state = StateStore(self.store, state_key=ENDPOINT_KEY, lock_key=LOCK_KEY, unlock_command=UNLOCK_COMMAND)

    # ---------------------------------------------------------------- versions

    @property
    def versions_dir(self) -> Path:
        return self.model_root / VERSIONS_DIR

    @property
    def endpoint_file(self) -> Path:
        return self.model_root / ENDPOINT_KEY

    def version_dir(self, version: str) -> Path:
        return self.versions_dir / version

    def versions(self) -> list[ModelVersion]:
        """Every registered version, oldest first. Folders being written (hidden) are skipped."""
        if not self.versions_dir.is_dir():
            return []
        found = []
        for entry in self.versions_dir.iterdir():
            if entry.is_dir() and _VERSION_RE.match(entry.name):
                found.append(ModelVersion(entry.name, entry, _read_metadata(entry)))
        return sorted(found, key=lambda v: int(v.version))

    def get(self, version: str) -> ModelVersion:
        version = str(version).strip()
        if not _VERSION_RE.match(version):
            raise RegistryError(f"{version!r} is not a version number; expected 1, 2, 3, ...")
        path = self.version_dir(version)
        if not path.is_dir():
            known = ", ".join(v.version for v in self.versions()) or "none yet"
            raise RegistryError(f"{self.model_name} has no version {version} (registered: {known})")
        return ModelVersion(version, path, _read_metadata(path))

    def find_by_sha256(self, sha256: str) -> ModelVersion | None:
        for version in reversed(self.versions()):
            if version.onnx_sha256 == sha256:
                return version
        return None

    def next_version(self) -> str:
        versions = self.versions()
        return str(int(versions[-1].version) + 1) if versions else "1"

    def register(self, source: Path, metadata: dict[str, Any]) -> ModelVersion:
        """Copy ``source``'s artifacts into the next version folder, with ``metadata``.

        Call it while holding :meth:`lock`. The folder appears whole or not at all."""
        missing = [name for name in SERVED_FILES if not (source / name).is_file()]
        if missing:
            raise RegistryError(f"{source} has no {', '.join(missing)}: nothing to register")
        # and every other file the card lists (the reference profile 'edge.py monitor' compares with)
        listed = [n for n in ModelArtifact.read(source).card.artifacts if n == Path(n).name and n not in (".", "..")]
        version = self.next_version()
        target = self.version_dir(version)
        if target.exists():
            raise RegistryError(f"{target} already exists; the registry is inconsistent")
        with atomic_dir(target) as tmp:
            for name in dict.fromkeys((CARD_FILE, *MODEL_FILES, *listed)):
                if (source / name).is_file():
                    shutil.copy2(source / name, tmp / name)
            atomic_write_json(tmp / METADATA_FILE, {**metadata, "version": version})
        return self.get(version)

    # ---------------------------------------------------------------- endpoint

    def endpoint(self) -> tuple[Endpoint | None, int]:
        """The endpoint and its generation (0 when it does not exist yet)."""
        obj = self.store.read(ENDPOINT_KEY)
        if obj is None:
            return None, 0
        return _parse_endpoint(obj.data, self.endpoint_file), obj.generation

    def save_endpoint(self, endpoint: Endpoint, generation: int) -> None:
        endpoint.updated = utcnow()
        body = json.dumps(endpoint.model_dump(mode="json"), indent=2).encode("utf-8") + b"\n"
        try:
            self.store.write(ENDPOINT_KEY, body, if_generation_match=generation)
        except PreconditionFailedError as exc:
            raise PreconditionFailedError(
                f"the endpoint changed while this command ran ({exc.message})", hint="run the command again"
            ) from None

    def set_traffic(
        self, endpoint_name: str, version: str, action: Literal["deploy", "rollback"], by: str, *,
        forced: bool = False, note: str = "",
    ) -> Endpoint:  # fmt: skip
        """Send all traffic to ``version`` and record it. Call it while holding :meth:`lock`."""
        self.get(version)  # must exist
        endpoint, generation = self.endpoint()
        if endpoint is None:
            endpoint = Endpoint(name=endpoint_name, model=self.model_name)
        previous = endpoint.serving_version
        endpoint.traffic = {version: 100}
        endpoint.history.append(
            Deployment(action=action, version=version, previous=previous, by=by, forced=forced, note=note)
        )
        self.save_endpoint(endpoint, generation)
        return endpoint

    @contextlib.contextmanager
    def lock(self, command: str) -> Iterator[LockInfo]:
        """The registry lock (create-exclusive, like the provisioning state's; a dead holder's
        lock on this host is cleared by itself)."""
        self.model_root.mkdir(parents=True, exist_ok=True)
        with self._state.lock(command) as info:
            yield info

    @property
    def lock_store(self) -> StateStore:
        """The registry lock's store (``edge.py force-unlock --registry``)."""
        return self._state


def _read_metadata(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{folder / METADATA_FILE} is unreadable: {exc}") from None
    return data if isinstance(data, dict) else {}


def _parse_endpoint(data: bytes, where: Path) -> Endpoint:
    try:
        return Endpoint.model_validate(json.loads(data.decode("utf-8")))
    except (ValueError, ValidationError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0]
        raise RegistryError(
            f"{where} is corrupt: {first}",
            hint="restore it, or delete it and deploy again with 'python deploy-vertex.py --version N'",
        ) from None


def served_version(endpoint_file: Path) -> tuple[str, Path]:
    """(version, version folder) the endpoint in ``endpoint_file`` serves. For the server's
    hot reload: it needs only the file, not the config."""
    try:
        data = Path(endpoint_file).read_bytes()
    except FileNotFoundError:
        raise RegistryError(f"{endpoint_file} does not exist", hint="run 'python deploy-vertex.py'") from None
    endpoint = _parse_endpoint(data, Path(endpoint_file))
    version = endpoint.serving_version
    if version is None or not _VERSION_RE.match(version):
        raise RegistryError(f"{endpoint_file}: no version receives traffic", hint="run 'python deploy-vertex.py'")
    folder = Path(endpoint_file).parent / VERSIONS_DIR / version
    if not folder.is_dir():
        raise RegistryError(f"{endpoint_file} points at version {version}, but {folder} does not exist")
    return version, folder
