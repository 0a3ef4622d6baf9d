"""Provisioning state and its lock, on any :class:`~vertex_edge.storage.ObjectStore`.

The state records what ``edge.py setup`` created. Writes take a lock: an object created
if-absent (``O_EXCL`` locally, ``if_generation_match=0`` on GCS) that holds who/where/when.
A second ``edge.py`` fails at once with that information and the one command that clears it
(``python edge.py force-unlock``). A lock whose holder is provably dead - it was taken on this
host and its pid is not running - is cleared by itself, saying so; one taken on another host
(or unreadable) is reported, never guessed about. The same algorithm runs on every
:class:`~vertex_edge.storage.ObjectStore` (the stale lock is removed with a generation
precondition, so a lock taken meanwhile is never removed). State writes also carry the
generation they read, so two writers cannot silently overwrite each other.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vertex_edge.errors import ConfigError, LockHeldError, PreconditionFailedError
from vertex_edge.storage import ObjectStore, StoredObject

log = logging.getLogger(__name__)

STATE_KEY = "state.yaml"
LOCK_KEY = "state.lock"
UNLOCK_COMMAND = "python edge.py force-unlock"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (another user's counts as running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OSError:
        return False
    return True


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


def pid_namespace() -> str:
    """This process's pid namespace (Linux), or "" where there is none to read."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


class LockInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user: str
    host: str
    pid: int
    command: str
    since: str
    pid_namespace: str = ""  # e.g. pid:[4026531836]: containers sharing a hostname do not share pids

    @classmethod
    def here(cls, command: str) -> LockInfo:
        try:
            user = getpass.getuser()
        except Exception:  # noqa: BLE001 - no user database (containers)
            user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
        return cls(user=user, host=socket.gethostname(), pid=os.getpid(), command=command, since=utcnow(),
                   pid_namespace=pid_namespace())  # fmt: skip

    def describe(self) -> str:
        return f"{self.user}@{self.host} (pid {self.pid}, '{self.command}') since {self.since}"

    def dead_here(self, *, host: str | None = None, alive: Callable[[int], bool] = pid_alive) -> bool:
        """Provably dead: taken on this host (same hostname, and the same pid namespace when the
        lock records one) by a pid that is not running."""
        if self.pid <= 0 or self.host != (host or socket.gethostname()):
            return False
        if self.pid_namespace and self.pid_namespace != pid_namespace():
            return False  # another container with this hostname: its pids are not ours to check
        return not alive(self.pid)


class StateStore:
    """Load/save :class:`State` and hold its lock, on one object store.

    ``unlock_command`` is what the user runs to clear a lock whose holder cannot be proven dead;
    ``alive``/``host`` are injectable for tests."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        state_key: str = STATE_KEY,
        lock_key: str = LOCK_KEY,
        unlock_command: str = UNLOCK_COMMAND,
        alive: Callable[[int], bool] = pid_alive,
        host: str | None = None,
    ) -> None:
        self.store = store
        self.state_key = state_key
        self.lock_key = lock_key
        self.unlock_command = unlock_command
        self._alive = alive
        self._host = host

    @property
    def location(self) -> str:
        return self.store.describe(self.state_key)

    @property
    def lock_location(self) -> str:
        return self.store.describe(self.lock_key)

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
        return None if obj is None else _parse_holder(obj)

    @contextlib.contextmanager
    def lock(self, command: str | None = None) -> Iterator[LockInfo]:
        """Hold the lock for the ``with`` block; :class:`LockHeldError` naming the holder (and
        the command that clears it) when a live or unprovable holder has it. A provably dead
        holder's lock is removed first, with a warning saying so."""
        info = LockInfo.here(command or " ".join(["edge.py", *sys.argv[1:3]]))
        body = yaml.safe_dump(info.model_dump(mode="json"), sort_keys=False).encode("utf-8")
        generation = self._acquire(body)
        try:
            yield info
        finally:
            try:
                self.store.delete(self.lock_key, if_generation_match=generation)
            except PreconditionFailedError:
                # someone force-unlocked and re-locked: leave their lock alone
                pass

    def _acquire(self, body: bytes) -> int:
        """Create the lock object; clear a provably dead holder's lock once, then try again."""
        cleared = False
        while True:
            try:
                return self.store.write(self.lock_key, body, if_generation_match=0)
            except PreconditionFailedError:
                pass
            current = self.store.read(self.lock_key)
            if current is None:
                continue  # released meanwhile: try again
            holder = _parse_holder(current)
            if cleared or not holder.dead_here(host=self._host, alive=self._alive):
                raise self._held(holder)
            cleared = self._clear_stale(current, holder)

    def _clear_stale(self, current: StoredObject, holder: LockInfo) -> bool:
        try:
            self.store.delete(self.lock_key, if_generation_match=current.generation)
        except PreconditionFailedError:
            return True  # someone else cleared it (and may hold it now): look again, once
        log.warning(
            "removed a stale lock at %s: its holder %s is no longer running on this host",
            self.lock_location, holder.describe(),
        )  # fmt: skip
        return True

    def _held(self, holder: LockInfo) -> LockHeldError:
        here = self._host or socket.gethostname()
        if holder.host == here and self._alive(holder.pid):
            hint = (f"pid {holder.pid} is still running on this host: wait for it to finish (if that pid is now "
                    f"another program, clear the lock with '{self.unlock_command}')")  # fmt: skip
        elif holder.pid <= 0 or holder.host == "?":
            hint = f"the lock cannot be read; if no other edge.py runs, clear it with '{self.unlock_command}'"
        elif holder.host == here:
            hint = (f"it was taken in another container with this hostname ({holder.pid_namespace}), whose processes "
                    f"this one cannot see; if it no longer runs, clear the lock with '{self.unlock_command}'")  # fmt: skip
        else:
            hint = (f"it was taken on another host ({holder.host}), so this one cannot tell whether it still runs; "
                    f"if it does not, clear the lock with '{self.unlock_command}'")  # fmt: skip
        return LockHeldError(f"the state at {self.location} is locked by {holder.describe()}", hint=hint)

    def force_unlock(self) -> LockInfo | None:
        """Remove the lock whoever holds it. Returns the holder that was removed, if any."""
        holder = self.holder()
        self.store.delete(self.lock_key)
        return holder


def _parse_holder(obj: StoredObject) -> LockInfo:
    try:
        return LockInfo.model_validate(yaml.safe_load(obj.data.decode("utf-8")))
    except Exception:  # noqa: BLE001 - unreadable lock still counts as held
        return LockInfo(user="?", host="?", pid=0, command="(unreadable lock)", since="?")
