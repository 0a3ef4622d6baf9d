"""Loading (503 before ready, gs:// through google-cloud-storage), hot reload without drops."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.serving.tiny_model import bar_image, write_model_dir
from vertex_edge.serving.app import create_app
from vertex_edge.serving.model import download_gcs
from vertex_edge.serving.settings import ServerSettings


class FolderBackedClient:
    """A stand-in google-cloud-storage client serving a local folder as gs://bucket/prefix."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.requested: list[str] = []

    def bucket(self, name: str):  # noqa: ANN201
        client = self

        class Blob:
            def __init__(self, key: str) -> None:
                self.key = key
                client.requested.append(f"{name}/{key}")

            def exists(self) -> bool:
                return (client.folder / Path(self.key).name).is_file()

            def download_to_filename(self, dest: str) -> None:
                shutil.copy(client.folder / Path(self.key).name, dest)

        class Bucket:
            def blob(self, key: str) -> Blob:
                return Blob(key)

        return Bucket()


def test_health_is_503_until_the_model_is_loaded_and_warm(model_dir: Path, tmp_path: Path) -> None:
    release = threading.Event()
    client = FolderBackedClient(model_dir)

    def factory() -> FolderBackedClient:
        release.wait(30)
        return client

    settings = ServerSettings(storage_uri="gs://models-bucket/fashion/3", model_cache=str(tmp_path))
    app = create_app(settings, storage_client_factory=factory)
    with TestClient(app) as http:
        r = http.get("/health")
        assert r.status_code == 503 and r.json()["status"] == "loading"
        r = http.post("/predict", json={"instances": [bar_image(1).tolist()]})
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        release.set()
        deadline = time.monotonic() + 30
        while http.get("/health").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        r = http.post("/predict", json={"instances": [bar_image(1).tolist()]})
        assert r.status_code == 200 and r.json()["predictions"][0]["label"] == "Trouser"
    assert "models-bucket/fashion/3/model.onnx" in client.requested
    assert not any(k.endswith("model.keras") for k in client.requested)  # the server never needs it


def test_a_failed_load_is_reported_by_health(tmp_path: Path) -> None:
    reasons: list[str] = []
    app = create_app(ServerSettings(storage_uri=str(tmp_path / "missing")), on_fatal=reasons.append)
    with TestClient(app) as http:
        deadline = time.monotonic() + 30
        while not reasons:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        r = http.get("/health")
        assert r.status_code == 503 and r.json()["status"] == "failed"
        assert "does not exist" in r.json()["error"]
    assert "does not exist" in reasons[0]


def test_download_gcs_requires_the_model_files(tmp_path: Path) -> None:
    from vertex_edge.errors import DataError

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="gs://b/p/model.onnx does not exist"):
        download_gcs("gs://b/p", tmp_path, FolderBackedClient(empty))


@pytest.mark.slow
def test_server_loads_from_gcs_emulator(model_dir: Path, gcs_emulator: str, server_factory) -> None:
    import os

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    os.environ["STORAGE_EMULATOR_HOST"] = gcs_emulator
    try:
        client = storage.Client(project="test", credentials=AnonymousCredentials())
        bucket = client.create_bucket("edge-models")
        for name in ("model.onnx", "model_card.json", "model.keras"):
            bucket.blob(f"fashion-mnist/7/{name}").upload_from_filename(str(model_dir / name))
    finally:
        del os.environ["STORAGE_EMULATOR_HOST"]
    server = server_factory(
        {"AIP_STORAGE_URI": "gs://edge-models/fashion-mnist/7", "STORAGE_EMULATOR_HOST": gcs_emulator}
    )
    r = httpx.post(server.predict_url, json={"instances": [bar_image(8).tolist()]}, timeout=30)
    assert r.status_code == 200 and r.json()["predictions"][0]["label"] == "Bag"


@pytest.mark.slow
def test_hot_reload_swaps_the_model_without_dropping_requests(tmp_path: Path, server_factory) -> None:
    from vertex_edge.registry import LocalRegistry

    registry = LocalRegistry(tmp_path / "registry", "fashion-mnist")
    with registry.lock("test"):
        for version, bias in (("old", None), ("new", 5)):
            source = write_model_dir(tmp_path / version, version=version, bias_class=bias)
            registry.register(source, {"model_version": version})
        registry.set_traffic("ep", "1", "deploy", "test")
    server = server_factory(
        {
            "AIP_STORAGE_URI": str(registry.version_dir("1")),
            "EDGE_ENDPOINT_FILE": str(registry.endpoint_file),
            "EDGE_RELOAD_INTERVAL_S": "0.1",
        }
    )
    answers: list[tuple[int, str]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                r = http.post(server.predict_url, json={"instances": [bar_image(1).tolist()]})
                answers.append((r.status_code, r.json().get("model_version", r.text)))

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    time.sleep(0.5)
    with registry.lock("test"):
        registry.set_traffic("ep", "2", "deploy", "test")
    deadline = time.monotonic() + 30
    while not answers or answers[-1][1] != "new":
        assert time.monotonic() < deadline, "the new version was not picked up"
        time.sleep(0.05)
    time.sleep(0.3)
    stop.set()
    for w in workers:
        w.join()
    assert all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:3]
    versions = [v for _, v in answers]
    assert "old" in versions and versions[-1] == "new"
    assert httpx.get(server.health_url).json()["registry_version"] == "2"
    assert "now serving version 2" in server.logs()
