"""A following server tells the truth (serving-status.json and the health body): what it serves,
what it is loading, and - when a version cannot be loaded (a corrupt model.onnx) - that the old
version still serves and why the new one failed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.registry.conftest import train
from tests.serving.tiny_model import bar_image, write_model_dir
from vertex_edge.registry import LocalRegistry
from vertex_edge.serving_status import ServingStatus, judge_status, read_status, status_path

pytestmark = pytest.mark.slow


def registry_of(tmp_path: Path, versions: int) -> LocalRegistry:
    registry = LocalRegistry(tmp_path / "registry", "fashion-mnist")
    with registry.lock("test"):
        for n in range(1, versions + 1):
            source = write_model_dir(tmp_path / f"v{n}", version=f"model-{n}", bias_class=n)
            registry.register(source, {"model_version": f"model-{n}"})
        registry.set_traffic("ep", "1", "deploy", "test")
    return registry


def deploy(registry: LocalRegistry, version: str) -> None:
    with registry.lock("test"):
        registry.set_traffic("ep", version, "deploy", "test")


def wait_status(registry: LocalRegistry, ok, timeout: float = 30) -> ServingStatus:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while True:
        status = read_status(registry.model_root)
        if status is not None and ok(status):
            return status
        assert time.monotonic() < deadline, f"status never matched; last: {status}"
        time.sleep(0.05)


def test_a_following_server_reports_reloads_and_a_corrupt_version(tmp_path: Path, server_factory) -> None:
    registry = registry_of(tmp_path, 3)
    corrupt = registry.version_dir("3") / "model.onnx"
    corrupt.write_bytes(corrupt.read_bytes()[:-40] + b"\0" * 40)  # no longer the card's sha256
    server = server_factory(
        {
            "AIP_STORAGE_URI": str(registry.version_dir("1")),
            "EDGE_ENDPOINT_FILE": str(registry.endpoint_file),
            "EDGE_RELOAD_INTERVAL_S": "0.1",
        }
    )
    status = wait_status(registry, lambda s: s.serving_version == "1")
    assert (status.pid, status.url, status.target_version, status.error) == (
        server.process.pid,
        server.base_url,
        "1",
        None,
    )

    deploy(registry, "2")
    status = wait_status(registry, lambda s: s.serving_version == "2")
    assert status.target_version == "2" and status.error is None
    health = httpx.get(server.health_url).json()
    assert (health["registry_version"], health["target_version"], health["error"]) == ("2", "2", None)

    deploy(registry, "3")  # corrupt: the load fails, version 2 keeps serving, and everyone is told
    status = wait_status(registry, lambda s: s.error is not None)
    assert (status.serving_version, status.target_version) == ("2", "3")
    assert "sha256" in status.error and "the model card says" in status.error
    health = httpx.get(server.health_url)
    assert health.status_code == 200  # the old model serves
    assert health.json()["registry_version"] == "2" and health.json()["target_version"] == "3"
    assert "sha256" in health.json()["error"]
    answer = httpx.post(server.predict_url, json={"instances": [bar_image(0).tolist()]}).json()
    assert answer["model_version"] == "model-2"
    assert "cannot load version 3, still serving version 2" in server.logs()

    deploy(registry, "2")  # set back to what serves: the error is cleared
    status = wait_status(registry, lambda s: s.target_version == "2")
    assert status.serving_version == "2" and status.error is None
    assert httpx.get(server.health_url).json()["error"] is None

    assert server.stop() == 0
    assert not status_path(registry.endpoint_file).exists()  # no server follows any more


def test_a_server_told_not_to_follow_says_so(tmp_path: Path, server_factory) -> None:
    registry = registry_of(tmp_path, 2)
    server = server_factory(
        {
            "AIP_STORAGE_URI": str(registry.version_dir("1")),
            "EDGE_ENDPOINT_FILE": str(registry.endpoint_file),
            "EDGE_FOLLOW": "0",
            "EDGE_RELOAD_INTERVAL_S": "0.1",
        }
    )
    status = wait_status(registry, lambda s: s.serving_version == "1")
    assert status.target_version is None
    deploy(registry, "2")
    time.sleep(0.5)
    assert judge_status(read_status(registry.model_root), "2", since=None).kind == "not-following"  # type: ignore[union-attr]
    assert httpx.get(server.health_url).json()["registry_version"] == "1"
    assert server.stop() == 0 and read_status(registry.model_root) is None


def test_a_server_not_following_writes_no_status(tmp_path: Path, server_factory) -> None:
    registry = registry_of(tmp_path, 1)
    server = server_factory({"AIP_STORAGE_URI": str(registry.version_dir("1"))})
    health = httpx.get(server.health_url).json()
    assert health["registry_version"] == "1" and health["target_version"] is None
    assert read_status(registry.model_root) is None


def test_deploy_waits_for_a_real_server_and_fails_when_it_cannot_load(
    deploy_project: Path, deploy_cli, server_factory
) -> None:
    assert deploy_cli()[0] == 0
    registry = LocalRegistry(deploy_project / ".edge" / "registry", "fashion-mnist")
    server = server_factory(
        {
            "AIP_STORAGE_URI": str(registry.version_dir("1")),
            "EDGE_ENDPOINT_FILE": str(registry.endpoint_file),
            "EDGE_RELOAD_INTERVAL_S": "0.1",
        }
    )
    wait_status(registry, lambda s: s.serving_version == "1")
    train(deploy_project, version="v2-bbbb", accuracy=0.95, bias_class=3)
    code, out, err = deploy_cli()
    assert code == 0, err
    assert f"the server (pid {server.process.pid}, {server.base_url}) now serves version 2" in out
    # a model the card does not describe (5 labels, 10 outputs): its sha256 is right, loading fails
    folder = train(deploy_project, version="v3-cccc", accuracy=0.96, bias_class=4)
    card = json.loads((folder / "model_card.json").read_text())
    (folder / "model_card.json").write_text(json.dumps({**card, "labels": card["labels"][:5]}))
    code, out, err = deploy_cli()
    assert code == 1
    assert "could not load version 3 and still serves version 2" in err and "expected (1, 5)" in err
    assert httpx.get(server.health_url).json()["registry_version"] == "2"
    assert httpx.post(server.predict_url, json={"instances": [bar_image(0).tolist()]}).json()["model_version"] == "v2-bbbb"
