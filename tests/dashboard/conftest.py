"""Fixtures for the experiments UI: a Sacred file store holding one run of each kind, a local
registry with versions made from two of them, and the app over both."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.dashboard.runs_fixture import demo_store
from vertex_edge.dashboard.app import LOOPBACK_HOSTS, create_app
from vertex_edge.dashboard.lineage import LocalLineage
from vertex_edge.dashboard.service import RunsService, StoreInfo
from vertex_edge.registry import Endpoint, LocalRegistry
from vertex_edge.tracking.runs import FileExperimentStore

MODEL = "fashion-mnist"


def add_version(
    registry: LocalRegistry, version: str, *, run_id: str | None, sha256: str | None, passed: bool = True
) -> None:
    folder = registry.version_dir(version)
    folder.mkdir(parents=True)
    meta = {
        "version": version,
        "sacred_run_id": run_id,
        "quality_gate": {"passed": passed, "min_accuracy": 0.9, "forced": False},
    }
    if sha256:
        meta["artifacts"] = {"model.onnx": {"sha256": sha256, "bytes": 1}}
    (folder / "metadata.json").write_text(json.dumps(meta))


def make_registry(root: Path) -> LocalRegistry:
    """v1 from run 1 (by sha256), v2 from run 2 (by sha256, serving), v3 whose metadata has only a run id (3)."""
    registry = LocalRegistry(root, MODEL)
    add_version(registry, "1", run_id="1", sha256=f"{1:064x}")
    add_version(registry, "2", run_id="2", sha256=f"{2:064x}")
    add_version(registry, "3", run_id="3", sha256=None, passed=False)
    endpoint = Endpoint(name=f"{MODEL}-endpoint", model=MODEL, traffic={"2": 100, "1": 0})
    registry.endpoint_file.write_text(json.dumps(endpoint.model_dump(mode="json")))
    return registry


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def store_dir(tmp_path: Path, now: datetime) -> Path:
    folder = tmp_path / "experiments"
    demo_store(folder, now=now)
    return folder


@pytest.fixture
def service(store_dir: Path, tmp_path: Path) -> RunsService:
    lineage = LocalLineage(make_registry(tmp_path / "registry"))
    return RunsService(FileExperimentStore(store_dir), StoreInfo(f"Sacred file store {store_dir}", "local"), lineage)


@pytest.fixture
def client(service: RunsService) -> TestClient:
    return TestClient(create_app(service, allowed_hosts=["testserver", *LOOPBACK_HOSTS]), raise_server_exceptions=False)
