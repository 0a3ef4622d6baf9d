"""The local registry: versions written whole, the endpoint traffic map, the lock."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.serving.tiny_model import write_model_dir
from vertex_edge.errors import LockHeldError, PreconditionFailedError, RegistryError
from vertex_edge.registry import Endpoint, LocalRegistry, served_version


@pytest.fixture
def registry(tmp_path: Path) -> LocalRegistry:
    return LocalRegistry(tmp_path / "registry", "fashion-mnist")


def _register(registry: LocalRegistry, tmp_path: Path, version: str, **kw) -> str:
    source = write_model_dir(tmp_path / f"src-{version}", version=version, **kw)
    with registry.lock("test"):
        return registry.register(source, {"model_version": version}).version


def test_register_numbers_versions_and_copies_artifacts(registry: LocalRegistry, tmp_path: Path) -> None:
    assert registry.versions() == []
    assert _register(registry, tmp_path, "a") == "1"
    assert _register(registry, tmp_path, "b") == "2"
    versions = registry.versions()
    assert [v.version for v in versions] == ["1", "2"]
    folder = versions[1].path
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "model.keras", "model.onnx", "model_card.json"]
    assert json.loads((folder / "metadata.json").read_text()) == {"model_version": "b", "version": "2"}
    assert versions[1].card.version == "b"


def test_versions_sort_numerically_and_skip_partial_folders(registry: LocalRegistry, tmp_path: Path) -> None:
    for i in range(11):
        _register(registry, tmp_path, f"m{i}")
    (registry.versions_dir / ".12.abc.tmp").mkdir()  # an interrupted write
    assert [v.version for v in registry.versions()][-3:] == ["9", "10", "11"]
    assert registry.next_version() == "12"


def test_register_refuses_a_folder_without_a_model(registry: LocalRegistry, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RegistryError, match="model.onnx, model_card.json"):
        registry.register(empty, {})
    assert registry.versions() == []


def test_failed_copy_leaves_no_version(registry: LocalRegistry, tmp_path: Path, monkeypatch) -> None:
    source = write_model_dir(tmp_path / "src")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("vertex_edge.registry.shutil.copy2", boom)
    with pytest.raises(OSError):
        registry.register(source, {})
    assert registry.versions() == []
    assert not any(registry.versions_dir.iterdir())


def test_get_unknown_version_lists_known_ones(registry: LocalRegistry, tmp_path: Path) -> None:
    _register(registry, tmp_path, "a")
    with pytest.raises(RegistryError, match=r"no version 7 \(registered: 1\)"):
        registry.get("7")
    with pytest.raises(RegistryError, match="not a version number"):
        registry.get("../1")


def test_traffic_map_history_and_served_version(registry: LocalRegistry, tmp_path: Path) -> None:
    for v in "abc":
        _register(registry, tmp_path, v)
    with registry.lock("test"):
        registry.set_traffic("ep", "1", "deploy", "me")
        registry.set_traffic("ep", "3", "deploy", "me")
    endpoint, generation = registry.endpoint()
    assert endpoint is not None and generation != 0
    assert endpoint.traffic == {"3": 100}
    assert [(h.version, h.previous) for h in endpoint.history] == [("1", None), ("3", "1")]
    assert served_version(registry.endpoint_file) == ("3", registry.version_dir("3"))


def test_endpoint_write_with_stale_generation_is_refused(registry: LocalRegistry, tmp_path: Path) -> None:
    _register(registry, tmp_path, "a")
    with registry.lock("test"):
        registry.set_traffic("ep", "1", "deploy", "me")
    endpoint, generation = registry.endpoint()
    assert endpoint is not None
    other, other_gen = registry.endpoint()
    registry.save_endpoint(other, other_gen)  # someone else wrote first
    with pytest.raises(PreconditionFailedError, match="changed while this command ran"):
        registry.save_endpoint(endpoint, generation)


def test_lock_is_exclusive(registry: LocalRegistry) -> None:
    with registry.lock("first deploy"):
        with pytest.raises(LockHeldError, match="first deploy"):
            with registry.lock("second deploy"):
                pass
    with registry.lock("third"):  # released
        pass


def test_concurrent_registrations_get_distinct_versions(registry: LocalRegistry, tmp_path: Path) -> None:
    sources = [write_model_dir(tmp_path / f"s{i}", version=f"v{i}") for i in range(4)]
    got: list[str] = []
    errors: list[Exception] = []

    def worker(source: Path) -> None:
        for _ in range(200):
            try:
                with registry.lock("t"):
                    got.append(registry.register(source, {}).version)
                return
            except LockHeldError:
                threading.Event().wait(0.01)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=worker, args=(s,)) for s in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(got, key=int) == ["1", "2", "3", "4"]


def test_rollback_stack_replays_history() -> None:
    steps = [("deploy", "1"), ("deploy", "2"), ("deploy", "3"), ("rollback", "2"), ("deploy", "4")]
    ep = Endpoint.model_validate(
        {"name": "e", "model": "m", "history": [{"action": a, "version": v} for a, v in steps]}
    )
    assert ep.deployed_stack() == ["1", "2", "4"]


def test_corrupt_endpoint_file_is_a_clear_error(registry: LocalRegistry, tmp_path: Path) -> None:
    registry.model_root.mkdir(parents=True)
    registry.endpoint_file.write_text("{not json")
    with pytest.raises(RegistryError, match="is corrupt"):
        registry.endpoint()
    with pytest.raises(RegistryError, match="is corrupt"):
        served_version(registry.endpoint_file)
    with pytest.raises(RegistryError, match="does not exist"):
        served_version(tmp_path / "nope.json")
