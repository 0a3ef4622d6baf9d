"""The GCS object store: generation preconditions sent on every write and delete, 412 mapped
to PreconditionFailedError, and the state lock's logic on both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from tests.gcp.fakes import FakeBucket, FakeCloud, FakeStorage
from vertex_edge.errors import CloudError, LockHeldError, PreconditionFailedError
from vertex_edge.gcp.object_store import GcsStore
from vertex_edge.state import State, StateStore
from vertex_edge.storage import LocalStore


class RecordingBlob:
    """A blob that records the keyword arguments it is called with and answers like GCS."""

    def __init__(self, log: list[tuple[str, dict[str, Any]]], error: BaseException | None = None) -> None:
        self.log, self.error, self.generation = log, error, None

    def upload_from_string(self, data: bytes, **kwargs: Any) -> None:
        self.log.append(("upload", kwargs))
        if self.error:
            raise self.error
        self.generation = 42

    def delete(self, **kwargs: Any) -> None:
        self.log.append(("delete", kwargs))
        if self.error:
            raise self.error

    def download_as_bytes(self, **kwargs: Any) -> bytes:
        self.log.append(("download", kwargs))
        if self.error:
            raise self.error
        return b"body"


class RecordingClient:
    def __init__(self, error: BaseException | None = None) -> None:
        self.log: list[tuple[str, dict[str, Any]]] = []
        self.error = error
        self.paths: list[tuple[str, str]] = []

    def bucket(self, name: str) -> Any:
        client = self

        class _Bucket:
            def blob(self, key: str) -> RecordingBlob:
                client.paths.append((name, key))
                return RecordingBlob(client.log, client.error)

            def get_blob(self, key: str) -> RecordingBlob | None:
                client.log.append(("get_blob", {}))
                if isinstance(client.error, gexc.NotFound):
                    return None
                blob = RecordingBlob(client.log, None)
                blob.generation = "17"
                return blob

        return _Bucket()


def test_gcs_store_sends_generation_preconditions() -> None:
    client = RecordingClient()
    store = GcsStore(client, "b", ".edge")

    assert store.write("state.lock", b"x", if_generation_match=0) == 42
    store.write("state.yaml", b"y", if_generation_match=7)
    store.write("state.yaml", b"z")
    store.delete("state.lock", if_generation_match=42)

    assert client.log == [
        ("upload", {"content_type": "application/yaml", "if_generation_match": 0}),
        ("upload", {"content_type": "application/yaml", "if_generation_match": 7}),
        ("upload", {"content_type": "application/yaml", "if_generation_match": None}),
        ("delete", {"if_generation_match": 42}),
    ]
    assert client.paths == [("b", ".edge/state.lock"), ("b", ".edge/state.yaml"), ("b", ".edge/state.yaml"),
                            ("b", ".edge/state.lock")]  # fmt: skip
    assert store.describe("state.yaml") == "gs://b/.edge/state.yaml"


def test_gcs_store_maps_412_and_404() -> None:
    failing = GcsStore(RecordingClient(gexc.PreconditionFailed("conditionNotMet")), "b", ".edge")
    with pytest.raises(PreconditionFailedError, match="already exists"):
        failing.write("state.lock", b"x", if_generation_match=0)
    with pytest.raises(PreconditionFailedError, match="no longer generation 3"):
        failing.write("state.yaml", b"x", if_generation_match=3)
    with pytest.raises(PreconditionFailedError):
        failing.delete("state.lock", if_generation_match=3)

    missing = GcsStore(RecordingClient(gexc.NotFound("nope")), "b", ".edge")
    assert missing.read("state.yaml") is None
    assert missing.delete("state.lock") is False

    client = RecordingClient()
    found = GcsStore(client, "b", "").read("state.yaml")
    assert found is not None and found.data == b"body" and found.generation == 17
    assert client.log == [("get_blob", {}), ("download", {"if_generation_match": 17})]  # that generation's bytes


def test_gcs_store_turns_other_google_errors_into_cloud_errors() -> None:
    store = GcsStore(RecordingClient(gexc.Forbidden("storage.objects.create denied")), "b", ".edge")
    with pytest.raises(CloudError, match=r"cannot write gs://b/.edge/state.yaml: permission denied"):
        store.write("state.yaml", b"x")
    with pytest.raises(ValueError):
        store.read("../escape")


def stores(tmp_path: Path) -> list[Any]:
    cloud = FakeCloud()
    cloud.buckets["b"] = FakeBucket(cloud, "b")
    return [LocalStore(tmp_path / "state"), GcsStore(FakeStorage(cloud), "b", ".edge")]


@pytest.mark.parametrize("backend", [0, 1], ids=["local", "gcs"])
def test_lock_is_exclusive_and_says_who_holds_it(tmp_path: Path, backend: int) -> None:
    store = StateStore(stores(tmp_path)[backend])
    with store.lock("edge.py setup --target gcp") as info:
        with pytest.raises(LockHeldError) as err:
            with StateStore(store.store).lock("edge.py teardown"):
                pass
        assert f"{info.user}@{info.host} (pid {info.pid}, 'edge.py setup --target gcp')" in err.value.message
        assert "force-unlock" in (err.value.hint or "")
    with store.lock():  # released: can be taken again
        pass


@pytest.mark.parametrize("backend", [0, 1], ids=["local", "gcs"])
def test_two_writers_cannot_silently_overwrite_the_state(tmp_path: Path, backend: int) -> None:
    store = StateStore(stores(tmp_path)[backend])
    gen = store.save(State(target="gcp"), 0)
    first, gen_a = store.load()
    second, gen_b = store.load()
    assert first is not None and second is not None and gen_a == gen_b == gen

    store.save(first, gen_a)
    with pytest.raises(PreconditionFailedError, match="changed by someone else"):
        store.save(second, gen_b)


@pytest.mark.parametrize("backend", [0, 1], ids=["local", "gcs"])
def test_force_unlock_removes_a_dead_lock(tmp_path: Path, backend: int) -> None:
    store = StateStore(stores(tmp_path)[backend])
    store.store.write(store.lock_key, b"user: bob\nhost: h\npid: 1\ncommand: edge.py setup\nsince: x\n",
                      if_generation_match=0)  # fmt: skip
    assert store.holder() is not None and store.holder().user == "bob"  # type: ignore[union-attr]
    assert store.force_unlock() is not None
    assert store.holder() is None


@pytest.mark.parametrize("backend", [0, 1], ids=["local", "gcs"])
def test_a_dead_holder_on_this_host_is_cleared_on_either_backend(tmp_path: Path, backend: int) -> None:
    """The one algorithm (vertex_edge.state) on both stores: a provably dead holder's lock is
    removed with a generation precondition and taken; another host's is reported."""
    base = stores(tmp_path)[backend]
    store = StateStore(base, host="here", alive=lambda pid: False)
    store.store.write(store.lock_key, b"user: bob\nhost: here\npid: 77\ncommand: edge.py setup\nsince: x\n",
                      if_generation_match=0)  # fmt: skip
    with store.lock("edge.py setup --target gcp") as info:
        assert store.holder() == info
    assert store.holder() is None
    store.store.write(store.lock_key, b"user: bob\nhost: ci-runner\npid: 77\ncommand: edge.py setup\nsince: x\n",
                      if_generation_match=0)  # fmt: skip
    with pytest.raises(LockHeldError) as err:
        with store.lock():
            pass
    assert "ci-runner" in (err.value.hint or "") and "python edge.py force-unlock" in (err.value.hint or "")
