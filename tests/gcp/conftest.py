"""Fixtures for the gcp target: fake clients, a GcpEnv on them, and a real GCS emulator."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.gcp.fakes import PROJECT, REGION, FakeCloud, FakeDvc, FakeKube
from vertex_edge.config import EdgeConfig, GcpConfig
from vertex_edge.gcp.names import GcpNames
from vertex_edge.provision.gcp.env import GcpEnv

PASSWORD = "generated-PASSWORD-zz9PluralZAlpha"


def passwords() -> Callable[[], str]:
    """The password factory: PASSWORD first (the root's, on a fresh project), then PASSWORD-2, -3..."""
    count = itertools.count(1)
    return lambda: PASSWORD if (n := next(count)) == 1 else f"{PASSWORD}-{n}"


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
            password_factory=passwords(),
            mongo=cloud.mongo.client,
        )
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.close()


# --- a real GCS emulator (the gcs_emulator fixture is in tests/conftest.py) ---------------


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
