"""Fixtures for the web app: the app with a fake endpoint client injected through a dependency
override, a tiny ONNX model, and a real local prediction server process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.webapp.helpers import REPO, FakeClient, build_tiny_model, free_port, wait_http
from vertex_edge.webapp.app import create_app, get_client
from vertex_edge.webapp.settings import WebappSettings


@pytest.fixture
def settings() -> WebappSettings:
    return WebappSettings()


@pytest.fixture
def fake() -> FakeClient:
    return FakeClient()


@pytest.fixture
def app(settings: WebappSettings, fake: FakeClient):
    """The app with the endpoint client replaced through a dependency override."""
    app = create_app(settings, client=FakeClient(class_id=0, version="never-used"))
    app.dependency_overrides[get_client] = lambda: fake
    return app


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("model") / "fashion-mnist")


@pytest.fixture(scope="session")
def prediction_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m vertex_edge.serving`` on a free port, serving the tiny model; yields the predict URL."""
    try:
        import vertex_edge.serving  # noqa: F401
    except ImportError:
        pytest.skip("vertex_edge.serving (the prediction server) is not in this checkout")
    port = free_port()
    env = dict(os.environ)
    env.update(
        AIP_STORAGE_URI=str(tiny_model_dir),
        AIP_HTTP_PORT=str(port),
        AIP_PREDICT_ROUTE="/predict",
        AIP_HEALTH_ROUTE="/health",
        EDGE_OFFLINE="1",
    )
    log = (tmp_path_factory.mktemp("server") / "server.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vertex_edge.serving"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
    except (RuntimeError, TimeoutError) as exc:
        proc.kill()
        proc.wait()
        log.seek(0)
        pytest.fail(f"prediction server did not start: {exc}\n{log.read()[-3000:]}")
    yield f"http://127.0.0.1:{port}/predict"
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
