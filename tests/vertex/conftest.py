"""Fixtures for the Vertex AI training and deploy tests: tiny prepared data, configs, a GCS
emulator in this process, and helpers to run the trainer entrypoint as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, tool_env
from vertex_edge.config import EdgeConfig, parse_config

# small enough to train in seconds on a shared CPU
TINY_PARAMS = {
    "epochs": 2,
    "batch_size": 32,
    "early_stopping_patience": 0,
    "augment": {"flip": False, "shift": 0},
    "model": {"filters": [4], "dense": 8},
}


def gcp_config(**vertex: object) -> EdgeConfig:
    data: dict[str, object] = {"target": "gcp", "gcp": {"project": "my-proj-123", "region": "europe-west4"}}
    if vertex:
        data["vertex"] = vertex
    return parse_config(data)


def prepare_synthetic(folder: Path, *, n_train: int = 240, n_test: int = 80) -> Path:
    """data/prepared (train.npz, test.npz, meta.json) from the synthetic dataset; returns it."""
    from tests.synthetic import make_dataset
    from vertex_edge.data.manifest import load_manifest
    from vertex_edge.data.prepare import prepare
    from vertex_edge.fsutil import atomic_write_json

    raw = folder / "raw"
    manifest = make_dataset(raw, n_train=n_train, n_test=n_test)
    out = folder / "prepared"
    report = prepare(load_manifest(manifest), raw, out)
    atomic_write_json(out / "meta.json", {k: report[k] for k in ("labels", "image_shape", "data_version")})
    return out


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_synthetic(tmp_path_factory.mktemp("vertex-data"))


@pytest.fixture
def local_config() -> EdgeConfig:
    return EdgeConfig()


def task_argv(data_uri: str, params: dict | None = None, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "vertex_edge.vertex.task",
        "--data-uri", data_uri,
        "--params-json", json.dumps(params or TINY_PARAMS),
        "--model-name", "fashion-mnist",
        "--ood-fpr", "0.02",
        "--git-commit", "3f2a9c1d" + "0" * 32,
        *extra,
    ]  # fmt: skip


def aip_env(base: str, **extra: str) -> dict[str, str]:
    from vertex_edge.vertex.contract import aip_env as contract_env

    env = tool_env(**extra)
    env.update(contract_env(base))
    env.pop("TF_CONFIG", None)
    env.pop("CLUSTER_SPEC", None)
    return env


def run_task(data_uri: str, base: str, *extra: str, env_extra: dict[str, str] | None = None,
             params: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        task_argv(data_uri, params, *extra),
        cwd=REPO,
        env=aip_env(base, **(env_extra or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def gcs_emulator() -> Iterator[str]:
    """gcp-storage-emulator in this process (in memory) with a bucket 'edge-test'; yields its URL."""
    from gcp_storage_emulator.server import create_server

    from vertex_edge.vertex.local_jobs import free_ports

    port = free_ports(1)[0]
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket="edge-test")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def emulator_files(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201 - Files
    """Files on the emulator; STORAGE_EMULATOR_HOST is also set for subprocesses (vertex-local)."""
    from vertex_edge.gcp.clients import storage_client
    from vertex_edge.gcp.files import Files

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    return Files(storage_client(env={"STORAGE_EMULATOR_HOST": gcs_emulator}))


def environ_without_gcp_credentials() -> dict[str, str]:
    env = tool_env()
    for key in list(env):
        if key.startswith(("GOOGLE_", "CLOUDSDK_")) or key == "STORAGE_EMULATOR_HOST":
            env.pop(key)
    env["GOOGLE_APPLICATION_CREDENTIALS"] = os.devnull  # any use of credentials would fail loudly
    return env
