"""One training per workspace, and no orphaned training.

* :class:`TrainLock` - an exclusive ``flock`` on ``<models>/.<model>.train.lock`` (beside the model
  folder the training writes), holding who holds it (pid, host, command, since). The kernel drops
  the lock when its holder dies, even by SIGKILL, so a dead holder never blocks anyone; a live one
  is named in the error. Queued experiments run in their own temporary clones, each with its own
  model folder and so its own lock: ``dvc queue start -j 2`` still trains two at once.
* :func:`watch_parent` - under ``dvc repro``/``dvc exp run`` the stage is DVC's child. When that
  parent is killed, the stage is re-parented; the watcher then interrupts the training (recorded as
  INTERRUPTED in Sacred) instead of leaving it running beside the next ``dvc repro``. DVC runs the
  command through ``$SHELL -c`` (``/bin/sh`` where SHELL is unset), and dash does not ``exec`` it:
  the shell between DVC and the training survives DVC, so the shells above this process are watched
  too. A training that has not stopped ``grace_s`` after being told exits anyway, printing where
  each thread was (a hung training must not outlive its pipeline either).
"""

from __future__ import annotations

import contextlib
import faulthandler
import fcntl
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from vertex_edge.errors import LockHeldError
from vertex_edge.state import utcnow


def lock_path(model_dir: Path) -> Path:
    return model_dir.parent / f".{model_dir.name}.train.lock"


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode("utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process"
    return f"pid {info.get('pid')} on {info.get('host')} ('{info.get('command')}', since {info.get('since')})"


@contextlib.contextmanager
def train_lock(model_dir: Path, command: str | None = None) -> Iterator[Path]:
    """Hold the workspace's training lock while the block runs; :class:`LockHeldError` naming the
    holder when a live process holds it. The lock file is removed on release (a killed holder's file
    stays, unlocked, and the next training takes it over)."""
    path = lock_path(Path(model_dir))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path, model_dir)
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": utcnow(),
                "command": command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:200]}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still holding it: whoever opens the path next gets a new file
        os.close(fd)  # closing drops the flock


def _acquire(path: Path, model_dir: Path) -> int:
    """An fd holding the flock on the file that is at ``path`` now (not one a releaser just unlinked)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = _holder(fd)
            os.close(fd)
            pid = who.split()[1] if who.startswith("pid ") else "PID"
            raise LockHeldError(
                f"another training is running in this workspace: {who}; it writes {model_dir}",
                hint=f"wait for it to finish, or stop it: 'kill {pid}' (its run is then recorded as INTERRUPTED). "
                "The lock goes with its holder: nothing to clear by hand",
            ) from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder released and removed it meanwhile: take the new file


def interrupt_self() -> None:
    """Deliver SIGTERM to this process: the training records INTERRUPTED and stops."""
    os.kill(os.getpid(), signal.SIGTERM)


SHELLS = frozenset({"sh", "dash", "bash", "zsh", "ksh", "mksh", "fish"})


def _stat(pid: int) -> tuple[str, int] | None:
    """(command name, parent pid) of a live process from /proc; None when it is gone (or no /proc)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name, fields = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 1 :].split()
    if len(fields) < 2 or fields[0] in ("Z", "X"):  # a zombie has exited already
        return None
    return name, int(fields[1])


def ancestry(depth: int = 4) -> list[tuple[int, int]]:
    """(pid, parent pid) of this process and of each shell above it, up to the first non-shell
    (DVC): when any of them is re-parented or gone, the pipeline that started us is."""
    chain = [(os.getpid(), os.getppid())]
    while len(chain) < depth:
        above = _stat(chain[-1][1])
        if above is None or above[0] not in SHELLS:
            break
        chain.append((chain[-1][1], above[1]))
    return chain


def _orphaned(chain: list[tuple[int, int]]) -> bool:
    if os.getppid() != chain[0][1]:
        return True
    for pid, parent in chain[1:]:
        now = _stat(pid)
        if now is None or now[1] != parent:
            return True
    return False


def watch_parent(
    on_orphaned: Callable[[], None] = interrupt_self, *, interval_s: float = 1.0, grace_s: float | None = 60.0
) -> Callable[[], None]:
    """Call ``on_orphaned`` once if the process (or shell) that started this one dies; if this
    process is still running ``grace_s`` later, dump every thread's traceback to stderr and exit
    (status 143, as for SIGTERM). Returns a function that stops watching (before it has fired)."""
    chain = ancestry()
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            if _orphaned(chain):
                on_orphaned()
                break
        else:
            return
        if grace_s is None:
            return
        time.sleep(grace_s)  # not cut short by the stop function: the way out can hang too
        sys.stderr.write(
            f"the training did not stop within {grace_s:.0f} s of its pipeline ending; exiting. Where it was:\n"
        )
        sys.stderr.flush()
        faulthandler.dump_traceback(all_threads=True)
        os._exit(143)

    threading.Thread(target=loop, name="edge-parent-watch", daemon=True).start()
    return stop.set
