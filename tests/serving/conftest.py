"""Serving fixtures: a tiny model folder and a real server process on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import free_port  # noqa: F401 - re-exported for serving/registry tests
from tests.monitoring.conftest import prepared_model  # noqa: F401 - a model with the monitor output
from tests.registry.conftest import deploy_cli, deploy_project  # noqa: F401 - deploy-vertex.py in-process
from tests.serving.tiny_model import write_model_dir
from vertex_edge.serving.app import create_app
from vertex_edge.serving.settings import ServerSettings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return write_model_dir(tmp_path / "model")


@dataclass
class RunningServer:
    process: subprocess.Popen
    base_url: str
    health_route: str
    predict_route: str
    log_path: Path

    @property
    def predict_url(self) -> str:
        return self.base_url + self.predict_route

    @property
    def health_url(self) -> str:
        return self.base_url + self.health_route

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def client_for(model_dir: Path, **settings: object) -> TestClient:
    """The server in-process (FastAPI's test client); use it as a context manager."""
    return TestClient(create_app(ServerSettings(storage_uri=str(model_dir), **settings)))  # type: ignore[arg-type]


def ready(client: TestClient) -> None:
    """Wait until the in-process server's health route answers 200 (its model is loaded)."""
    deadline = time.monotonic() + 30
    while client.get("/health").status_code != 200:
        assert time.monotonic() < deadline, client.get("/health").text
        time.sleep(0.02)


def start_server(
    env_extra: dict[str, str], log_path: Path, *, wait_ready: bool = True, timeout: float = 60
) -> RunningServer:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIP_", "EDGE_"))}
    env.update({"AIP_HTTP_PORT": str(port), "EDGE_HOST": "127.0.0.1", "PYTHONPATH": str(REPO)})
    env.update(env_extra)
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [sys.executable, "-m", "vertex_edge.serving"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    server = RunningServer(
        process,
        f"http://127.0.0.1:{port}",
        env.get("AIP_HEALTH_ROUTE", "/health"),
        env.get("AIP_PREDICT_ROUTE", "/predict"),
        log_path,
    )
    if wait_ready:
        wait_for_health(server, timeout)
    return server


def wait_for_health(server: RunningServer, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited with {server.process.returncode}:\n{server.logs()}")
        try:
            if httpx.get(server.health_url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"server not healthy within {timeout} s:\n{server.logs()}")


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator:
    servers: list[RunningServer] = []

    def factory(env_extra: dict[str, str], **kw) -> RunningServer:
        server = start_server(env_extra, tmp_path / f"server-{len(servers)}.log", **kw)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


VERTEX_HEALTH = "/v1/endpoints/123/deployedModels/456"
VERTEX_PREDICT = "/v1/endpoints/123/deployedModels/456:predict"


@pytest.fixture(scope="module")
def vertex_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for a module: non-default AIP_* routes, a free port, the tiny model."""
    tmp = tmp_path_factory.mktemp("vertex-server")
    folder = write_model_dir(tmp / "model")
    server = start_server(
        {
            "AIP_STORAGE_URI": str(folder),
            "AIP_HEALTH_ROUTE": VERTEX_HEALTH,
            "AIP_PREDICT_ROUTE": VERTEX_PREDICT,
            "EDGE_MAX_INSTANCES": "100",
        },
        tmp / "server.log",
    )
    yield server
    server.stop()
