"""The object store, the state file and its create-exclusive lock (local backend)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vertex_edge.errors import LockHeldError, PreconditionFailedError
from vertex_edge.state import Resource, State, StateStore
from vertex_edge.storage import LocalStore


def test_create_if_absent_is_exclusive(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.write("a", b"1", if_generation_match=0)
    with pytest.raises(PreconditionFailedError):
        store.write("a", b"2", if_generation_match=0)
    assert store.read("a").data == b"1"


def test_generation_preconditions(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    gen = store.write("s", b"v1")
    assert store.read("s").generation == gen
    new_gen = store.write("s", b"v2", if_generation_match=gen)
    with pytest.raises(PreconditionFailedError):
        store.write("s", b"v3", if_generation_match=gen)  # stale
    assert store.read("s").data == b"v2"
    with pytest.raises(PreconditionFailedError):
        store.delete("s", if_generation_match=gen)
    assert store.delete("s", if_generation_match=new_gen)
    assert store.read("s") is None


def test_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        LocalStore(tmp_path).write("../x", b"")


def test_state_round_trip_and_lost_race(tmp_path: Path) -> None:
    states = StateStore(LocalStore(tmp_path))
    assert states.load() == (None, 0)
    state = State(target="local", resources={"root": Resource(kind="folder", name="root", location="/x")})
    gen = states.save(state, 0)
    loaded, gen2 = states.load()
    assert loaded.resources["root"].location == "/x" and gen2 == gen
    states.save(loaded, gen2)
    with pytest.raises(PreconditionFailedError, match="changed by someone else"):
        states.save(loaded, gen2)  # a second writer with the old generation


def test_second_lock_fails_with_holder_and_since(tmp_path: Path) -> None:
    states = StateStore(LocalStore(tmp_path))
    with states.lock("edge.py setup"):
        with pytest.raises(LockHeldError) as err:
            with states.lock("edge.py other"):
                pass
        assert "edge.py setup" in err.value.message and " since " in err.value.message
        assert "force-unlock" in (err.value.hint or "")
    with states.lock("again"):  # released on exit
        pass


def test_force_unlock(tmp_path: Path) -> None:
    states = StateStore(LocalStore(tmp_path))
    cm = states.lock("edge.py crashed")
    cm.__enter__()  # never released, like a killed process
    holder = states.force_unlock()
    assert holder is not None and holder.command == "edge.py crashed"
    assert states.holder() is None
    with states.lock("next"):
        pass


def test_corrupt_state_is_reported(tmp_path: Path) -> None:
    (tmp_path / "state.yaml").write_text("target: [\n")
    from vertex_edge.errors import ConfigError

    with pytest.raises(ConfigError, match="corrupt"):
        StateStore(LocalStore(tmp_path)).load()


# ---------------------------------------------------------------- stale locks


def _lock_file(states: StateStore, *, host: str, pid: int, command: str = "edge.py setup") -> None:
    body = f"user: bob\nhost: {host}\npid: {pid}\ncommand: {command}\nsince: '2026-11-24T10:00:00+00:00'\n"
    states.store.write(states.lock_key, body.encode(), if_generation_match=0)


def test_a_dead_holder_on_this_host_is_cleared_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    states = StateStore(LocalStore(tmp_path), host="here", alive=lambda pid: pid != 4242)
    _lock_file(states, host="here", pid=4242)
    with caplog.at_level("WARNING"), states.lock("edge.py setup --target local") as info:
        assert states.holder() == info  # the new lock is ours
    assert "removed a stale lock at" in caplog.text and "bob@here (pid 4242, 'edge.py setup')" in caplog.text
    assert "no longer running on this host" in caplog.text
    assert states.holder() is None  # and released
    assert [p.name for p in tmp_path.iterdir()] == []  # nothing left aside


def test_a_holder_on_another_host_is_reported_with_the_command_that_clears_it(tmp_path: Path) -> None:
    states = StateStore(LocalStore(tmp_path), host="here", alive=lambda pid: False)
    _lock_file(states, host="laptop", pid=4242)
    with pytest.raises(LockHeldError) as err:
        with states.lock("edge.py setup"):
            pass
    assert "locked by bob@laptop (pid 4242, 'edge.py setup')" in err.value.message
    assert "taken on another host (laptop)" in (err.value.hint or "")
    assert "'python edge.py force-unlock'" in (err.value.hint or "")
    assert states.holder() is not None and states.holder().host == "laptop"  # type: ignore[union-attr]


def test_a_live_or_unreadable_holder_is_never_cleared(tmp_path: Path) -> None:
    states = StateStore(LocalStore(tmp_path), host="here", alive=lambda pid: True)
    _lock_file(states, host="here", pid=4242)
    with pytest.raises(LockHeldError) as err:
        with states.lock():
            pass
    assert "pid 4242 is still running on this host: wait for it to finish" in (err.value.hint or "")
    states.force_unlock()
    states.store.write(states.lock_key, b"\x00not yaml: [", if_generation_match=0)
    with pytest.raises(LockHeldError) as err:
        with states.lock():
            pass
    assert "(unreadable lock)" in err.value.message and "cannot be read" in (err.value.hint or "")


def test_the_registry_lock_names_its_own_unlock_command(tmp_path: Path) -> None:
    from vertex_edge.registry import LocalRegistry

    registry = LocalRegistry(tmp_path, "fashion-mnist")
    with registry.lock("deploy-vertex.py deploy"):
        with pytest.raises(LockHeldError) as err:
            with LocalRegistry(tmp_path, "fashion-mnist").lock("deploy-vertex.py --rollback"):
                pass
    assert "'python edge.py force-unlock --registry'" in (err.value.hint or "")


def test_a_conditional_delete_never_removes_a_lock_taken_meanwhile(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    stale = store.write("state.lock", b"old", if_generation_match=0)
    assert store.delete("state.lock", if_generation_match=stale)
    fresh = store.write("state.lock", b"new", if_generation_match=0)
    with pytest.raises(PreconditionFailedError):
        store.delete("state.lock", if_generation_match=stale)  # a clearer that read the stale one
    assert store.read("state.lock") is not None and store.read("state.lock").generation == fresh  # type: ignore[union-attr]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.lock"]


def test_a_holder_in_another_pid_namespace_with_this_hostname_is_not_judged(tmp_path: Path) -> None:
    """A container sharing the hostname (network=host) has its own pids: never cleared from here."""
    states = StateStore(LocalStore(tmp_path), host="here", alive=lambda pid: False)
    body = ("user: bob\nhost: here\npid: 4242\ncommand: edge.py setup\nsince: x\n"
            "pid_namespace: 'pid:[1]'\n")  # fmt: skip
    states.store.write(states.lock_key, body.encode(), if_generation_match=0)
    with pytest.raises(LockHeldError) as err:
        with states.lock():
            pass
    assert "another container with this hostname (pid:[1])" in (err.value.hint or "")
