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
