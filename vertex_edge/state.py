"""Provisioning state and its lock, on any :class:`~vertex_edge.storage.ObjectStore`.

The state records what ``edge.py setup`` created. Writes take a lock: an object created
if-absent (``O_EXCL`` locally, ``if_generation_match=0`` on GCS) that holds who/where/when.
A second ``edge.py`` fails at once with that information; ``edge.py force-unlock`` clears it.
State writes also carry the generation they read, so two writers cannot silently overwrite
each other.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vertex_edge.errors import ConfigError, LockHeldError, PreconditionFailedError
from vertex_edge.storage import ObjectStore

STATE_KEY = "state.yaml"
LOCK_KEY = "state.lock"


def utcnow() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


class Resource(BaseModel):
    """One provisioned resource."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    name: str
    location: str = ""
    created: str = Field(default_factory=utcnow)
    details: dict[str, Any] = Field(default_factory=dict)


class State(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    target: str
    updated: str = Field(default_factory=utcnow)
    resources: dict[str, Resource] = Field(default_factory=dict)


class LockInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user: str
    host: str
    pid: int
    command: str
    since: str

    @classmethod
    def here(cls, command: str) -> LockInfo:
        try:
            user = getpass.getuser()
        except Exception:  # noqa: BLE001 - no user database (containers)
            user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
        return cls(user=user, host=socket.gethostname(), pid=os.getpid(), command=command, since=utcnow())

    def describe(self) -> str:
        return f"{self.user}@{self.host} (pid {self.pid}, '{self.command}') since {self.since}"


class StateStore:
    """Load/save :class:`State` and hold its lock, on one object store."""

    def __init__(self, store: ObjectStore, *, state_key: str = STATE_KEY, lock_key: str = LOCK_KEY) -> None:
        self.store = store
        self.state_key = state_key
        self.lock_key = lock_key

    @property
    def location(self) -> str:
        return self.store.describe(self.state_key)

    def load(self) -> tuple[State | None, int]:
        """Return (state or None, generation; 0 when absent)."""
        obj = self.store.read(self.state_key)
        if obj is None:
            return None, 0
        try:
            data = yaml.safe_load(obj.data.decode("utf-8"))
            return State.model_validate(data), obj.generation
        except (yaml.YAMLError, ValidationError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"state file {self.location} is corrupt: {str(exc).splitlines()[0]}",
                hint="restore it from backup or delete it and run 'python edge.py setup' again",
            ) from None

    def save(self, state: State, generation: int) -> int:
        """Write ``state`` if nobody changed it since ``generation`` was read."""
        state.updated = utcnow()
        body = "# written by vertex-edge; do not edit by hand\n" + yaml.safe_dump(
            state.model_dump(mode="json"), sort_keys=False
        )
        try:
            return self.store.write(self.state_key, body.encode("utf-8"), if_generation_match=generation)
        except PreconditionFailedError as exc:
            raise PreconditionFailedError(
                f"state {self.location} was changed by someone else while this command ran ({exc.message})",
                hint="re-run the command; it re-reads the state",
            ) from None

    def holder(self) -> LockInfo | None:
        obj = self.store.read(self.lock_key)
        if obj is None:
            return None
        try:
            return LockInfo.model_validate(yaml.safe_load(obj.data.decode("utf-8")))
        except Exception:  # noqa: BLE001 - unreadable lock still counts as held
            return LockInfo(user="?", host="?", pid=0, command="(unreadable lock)", since="?")

    @contextlib.contextmanager
    def lock(self, command: str | None = None) -> Iterator[LockInfo]:
        info = LockInfo.here(command or " ".join(["edge.py", *sys.argv[1:3]]))
        body = yaml.safe_dump(info.model_dump(mode="json"), sort_keys=False).encode("utf-8")
        try:
            generation = self.store.write(self.lock_key, body, if_generation_match=0)
        except PreconditionFailedError:
            holder = self.holder()
            who = holder.describe() if holder else "another process"
            raise LockHeldError(
                f"the state at {self.location} is locked by {who}",
                hint="wait for it to finish; if it died, run 'python edge.py force-unlock'",
            ) from None
        try:
            yield info
        finally:
            try:
                self.store.delete(self.lock_key, if_generation_match=generation)
            except PreconditionFailedError:
                # someone force-unlocked and re-locked: leave their lock alone
                pass

    def force_unlock(self) -> LockInfo | None:
        """Remove the lock whoever holds it. Returns the holder that was removed, if any."""
        holder = self.holder()
        self.store.delete(self.lock_key)
        return holder
