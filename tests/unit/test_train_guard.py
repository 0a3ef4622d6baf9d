"""One training per workspace (a lock that goes with its holder), and no orphaned training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vertex_edge.errors import LockHeldError
from vertex_edge.training.guard import lock_path, train_lock

HOLD = """
import sys, time
from pathlib import Path
from vertex_edge.training.guard import train_lock
with train_lock(Path(sys.argv[1]), command="python -m steps.train (test)"):
    print("locked", flush=True)
    time.sleep(120)
"""

ORPHAN = """
import os, shlex, subprocess, sys, time
child = '''
import sys, time
from pathlib import Path
from vertex_edge.training.guard import watch_parent
watch_parent(lambda: Path(sys.argv[1]).write_text("orphaned"), interval_s=0.1)
print("watching", flush=True)
time.sleep(30)
'''
argv = [sys.executable, "-c", child, sys.argv[1]]
if sys.argv[2] == "sh":  # as DVC runs a stage where SHELL is unset: dash does not exec the command
    argv = ["/bin/sh", "-c", shlex.join(argv) + "; exit $?"]
p = subprocess.Popen(argv, stdout=sys.stdout)
print(p.pid, flush=True)
time.sleep(120)
"""


def _start(code: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env)


def test_a_second_training_in_the_workspace_is_refused_naming_the_holder(tmp_path: Path) -> None:
    model = tmp_path / "models" / "fashion-mnist"
    with train_lock(model):
        with pytest.raises(LockHeldError) as err:
            with train_lock(model):
                pass
        assert f"pid {os.getpid()}" in err.value.message and str(model) in err.value.message
        assert f"kill {os.getpid()}" in (err.value.hint or "") and err.value.exit_code == 3
    with train_lock(model):  # released
        pass
    assert not lock_path(model).exists()  # released: nothing left behind
    with train_lock(tmp_path / "elsewhere" / "fashion-mnist"):  # another workspace's model: its own lock
        with train_lock(model):
            pass


def test_a_killed_holder_never_blocks(tmp_path: Path) -> None:
    model = tmp_path / "models" / "fashion-mnist"
    holder = _start(HOLD, str(model))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeldError, match=rf"pid {holder.pid} .*python -m steps.train \(test\)"):
            with train_lock(model):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    with train_lock(model):  # the kernel dropped the dead holder's lock: nothing to clear by hand
        pass


@pytest.mark.parametrize("between", ["none", "sh"])
def test_a_training_whose_parent_dies_is_told(tmp_path: Path, between: str) -> None:
    """Also when a shell sits between DVC and the training and outlives DVC."""
    marker = tmp_path / "orphaned"
    parent = _start(ORPHAN, str(marker), between)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())  # the shell's pid where there is one
    assert parent.stdout.readline().strip() == "watching"
    assert not marker.exists()
    parent.send_signal(signal.SIGKILL)  # `kill -9` of the dvc process
    parent.wait(10)
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(child_pid, signal.SIGKILL)
    subprocess.run(["pkill", "-KILL", "-f", str(marker)], check=False)
    assert marker.read_text() == "orphaned"


STUCK = """
import sys, time
from vertex_edge.training.guard import watch_parent
watch_parent(lambda: print("told", flush=True), interval_s=0.1, grace_s=0.5)
print("watching", flush=True)
time.sleep(60)  # ignores being told
"""


def test_a_training_that_ignores_being_told_exits_after_the_grace_period() -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    shell = subprocess.Popen(["/bin/sh", "-c", f"{sys.executable} -c '{STUCK}' & echo $!; sleep 60"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    assert shell.stdout is not None
    child = int(shell.stdout.readline())
    assert shell.stdout.readline().strip() == "watching"
    shell.kill()  # the child's parent was this shell: re-parented now
    shell.wait(10)
    assert shell.stdout.readline().strip() == "told"
    deadline = time.monotonic() + 15
    while _alive(child):
        assert time.monotonic() < deadline, "a stuck training outlived its grace period"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False
