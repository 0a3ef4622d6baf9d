"""Which registry version a run made, and the share of the endpoint's traffic it gets.

A version is the run's when the sha256 of its ``model.onnx`` equals the run's model sha256 (the
model's identity), or - when either side has no sha256 - when its ``sacred_run_id`` is the run's id.
The local registry is read through :class:`~vertex_edge.registry.LocalRegistry` and re-read only
when its folders change. On the gcp target (the Vertex AI Model Registry) nothing is looked up:
the column stays empty and :attr:`Lineage.note` says why.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from vertex_edge.errors import EdgeError
from vertex_edge.registry import LocalRegistry


@dataclass(frozen=True)
class RegistryLink:
    version: str
    traffic: int  # percent of the endpoint's traffic (0: registered, not serving)
    gate_passed: bool | None  # the quality gate recorded when it was registered
    gate_forced: bool

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "traffic": self.traffic, "gate_passed": self.gate_passed,
                "gate_forced": self.gate_forced}  # fmt: skip


class Lineage(Protocol):
    note: str | None
    generation: int  # changes whenever the registry was read again

    def refresh(self) -> None:
        """Read the registry again if it changed (once per page or API answer)."""

    def links(self, run_id: str, sha256: str | None) -> list[RegistryLink]: ...


class NoLineage:
    """No registry to join (the gcp target, or none configured)."""

    def __init__(self, note: str | None = None) -> None:
        self.note = note
        self.generation = 0

    def refresh(self) -> None:
        return None

    def links(self, run_id: str, sha256: str | None) -> list[RegistryLink]:
        return []


@dataclass(frozen=True)
class _Entry:
    version: str
    run_id: str | None
    sha256: str | None
    gate_passed: bool | None
    gate_forced: bool


def _stamp(*paths: os.PathLike[str]) -> tuple[Any, ...]:
    out = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


class LocalLineage:
    """The local registry's versions and endpoint, joined to runs."""

    def __init__(self, registry: LocalRegistry) -> None:
        self.registry = registry
        self.note: str | None = None
        self.generation = 0
        self._lock = threading.Lock()
        self._stamp: tuple[Any, ...] | None = None
        self._by_sha: dict[str, list[_Entry]] = {}
        self._by_run: dict[str, list[_Entry]] = {}
        self._traffic: dict[str, int] = {}

    def refresh(self) -> None:
        stamp = _stamp(self.registry.versions_dir, self.registry.endpoint_file)
        with self._lock:
            if stamp == self._stamp:
                return
            entries, traffic, note = [], {}, None
            try:
                for v in self.registry.versions():
                    gate = v.metadata.get("quality_gate") if isinstance(v.metadata.get("quality_gate"), dict) else {}
                    run_id = v.metadata.get("sacred_run_id")
                    entries.append(_Entry(
                        v.version, str(run_id) if run_id not in (None, "") else None, v.onnx_sha256,
                        gate.get("passed") if isinstance(gate.get("passed"), bool) else None, bool(gate.get("forced")),
                    ))  # fmt: skip
                endpoint, _ = self.registry.endpoint()
                traffic = dict(endpoint.traffic) if endpoint is not None else {}
            except EdgeError as exc:  # a corrupt metadata.json or endpoint.json: say so, keep the page up
                note = f"the local registry could not be read: {exc.message}"
            by_sha: dict[str, list[_Entry]] = {}
            by_run: dict[str, list[_Entry]] = {}
            for e in entries:
                if e.sha256:
                    by_sha.setdefault(e.sha256, []).append(e)
                if e.run_id:
                    by_run.setdefault(e.run_id, []).append(e)
            self._by_sha, self._by_run, self._traffic, self.note, self._stamp = by_sha, by_run, traffic, note, stamp
            self.generation += 1

    def links(self, run_id: str, sha256: str | None) -> list[RegistryLink]:
        """The run's versions, oldest first (call :meth:`refresh` first)."""
        same = list(self._by_sha.get(sha256, [])) if sha256 else []
        same += [e for e in self._by_run.get(run_id, []) if not (e.sha256 and sha256)]
        same.sort(key=lambda e: int(e.version))
        return [
            RegistryLink(e.version, int(self._traffic.get(e.version, 0)), e.gate_passed, e.gate_forced) for e in same
        ]
