"""Fixtures for the gcp target: fake clients, a GcpEnv on them, and a real GCS emulator."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gcp.fakes import PROJECT, REGION, FakeCloud, FakeDvc, FakeKube
from vertex_edge.config import EdgeConfig, GcpConfig
from vertex_edge.gcp.names import GcpNames
from vertex_edge.gcp.steps import GcpEnv

PASSWORD = "generated-PASSWORD-zz9PluralZAlpha"


def gcp_config(**tracking: object) -> EdgeConfig:
    data = {"target": "gcp", "gcp": GcpConfig(project=PROJECT, region=REGION)}
    config = EdgeConfig(**data)
    if tracking:
        config = config.model_copy(update={"tracking": config.tracking.model_copy(update=tracking)})
    return config


@pytest.fixture
def cloud() -> FakeCloud:
    return FakeCloud()


@pytest.fixture
def kube(cloud: FakeCloud) -> FakeKube:
    return FakeKube(cloud)


@pytest.fixture
def fake_dvc(cloud: FakeCloud) -> FakeDvc:
    return FakeDvc(cloud)


@pytest.fixture
def make_env(cloud: FakeCloud, kube: FakeKube, fake_dvc: FakeDvc, tmp_path: Path):  # noqa: ANN201
    """``make_env(config=None)``: a GcpEnv on the fakes, with no real sleeping."""
    envs: list[GcpEnv] = []

    def make(config: EdgeConfig | None = None) -> GcpEnv:
        config = config or gcp_config()
        clock = {"t": 0.0}

        def sleep(seconds: float) -> None:
            clock["t"] += seconds

        env = GcpEnv(
            names=GcpNames.from_config(config),
            clients=cloud.clients(kube),
            repo=tmp_path,
            dvc=fake_dvc,
            sleep=sleep,
            clock=lambda: clock["t"],
            password_factory=lambda: PASSWORD,
        )
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.close()


# --- a real GCS emulator ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def gcs_emulator() -> Iterator[str]:
    """``gcp-storage-emulator`` on a free port (in memory); yields its ``http://host:port``."""
    exe = shutil.which("gcp-storage-emulator", path=str(Path(sys.executable).parent)) or shutil.which(
        "gcp-storage-emulator"
    )
    if exe is None:
        pytest.skip("gcp-storage-emulator is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gcp-storage-emulator did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def emulator_env(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    return gcs_emulator


@pytest.fixture
def storage_client(emulator_env: str):  # noqa: ANN201
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test", credentials=AnonymousCredentials())


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env
