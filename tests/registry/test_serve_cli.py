"""`python deploy-vertex.py` + `python edge.py serve`: a real prediction over HTTP, and a new
deployment (then a rollback) picked up by the running server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.registry.conftest import train
from tests.serving.conftest import free_port
from tests.serving.tiny_model import bar_image

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _wait_version(url: str, version: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "edge.py serve exited"
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == 200 and r.json()["registry_version"] == version:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"version {version} not served within {timeout} s")


def test_deploy_then_serve_answers_and_follows_deployments(deploy_project: Path, deploy_cli) -> None:
    assert deploy_cli()[0] == 0
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIP_", "EDGE_"))}
    env.update(
        PYTHONPATH=str(REPO),
        AIP_PREDICT_ROUTE="/v1/endpoints/local/deployedModels/fashion-mnist:predict",
        EDGE_RELOAD_INTERVAL_S="0.2",
    )
    log = open(deploy_project / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "edge.py"), "serve", "--port", str(port)],
        cwd=deploy_project,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    predict = base + env["AIP_PREDICT_ROUTE"]
    try:
        _wait_version(base + "/health", "1", proc)
        sample = json.loads((deploy_project / ".edge/registry/fashion-mnist/sample-request.json").read_text())
        assert httpx.post(predict, json=sample, timeout=30).status_code == 200
        r = httpx.post(predict, json={"instances": [bar_image(8).tolist()]}, timeout=30)
        assert r.status_code == 200 and r.json()["predictions"][0]["label"] == "Bag"
        assert r.json()["model_version"] == "v1-aaaa"
        request_id = r.json()["predictions"][0]["request_id"]

        train(deploy_project, version="v2-bbbb", accuracy=0.95, bias_class=0)
        assert deploy_cli()[0] == 0
        _wait_version(base + "/health", "2", proc)
        r = httpx.post(predict, json={"instances": [bar_image(8).tolist()]}, timeout=30)
        assert r.json()["model_version"] == "v2-bbbb" and r.json()["predictions"][0]["label"] == "T-shirt/top"

        assert deploy_cli("--rollback")[0] == 0
        _wait_version(base + "/health", "1", proc)
        assert httpx.post(predict, json={"instances": [bar_image(8).tolist()]}).json()["model_version"] == "v1-aaaa"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    output = (deploy_project / "serve.log").read_text()
    assert "serving fashion-mnist version 1" in output
    assert "now serving version 2" in output
    # edge.py serve captured every prediction where edge.py monitor reads them (edge.yaml monitoring)
    records = deploy_project / ".edge" / "monitoring" / "fashion-mnist" / "records"
    captured = [json.loads(line) for f in sorted(records.rglob("*.jsonl")) for line in f.read_text().splitlines()]
    assert any(r["request_id"] == request_id for r in captured)
    assert all("image" not in r for r in captured)


def test_a_server_pinned_to_a_version_is_reported_as_not_following(deploy_project: Path, deploy_cli) -> None:
    assert deploy_cli()[0] == 0
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIP_", "EDGE_"))}
    env.update(PYTHONPATH=str(REPO), EDGE_RELOAD_INTERVAL_S="0.2")
    proc = subprocess.Popen([sys.executable, str(REPO / "edge.py"), "serve", "--port", str(port), "--version", "1"],
                            cwd=deploy_project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_version(f"http://127.0.0.1:{port}/health", "1", proc)
        train(deploy_project, version="v2-bbbb", accuracy=0.95, bias_class=0)
        code, out, err = deploy_cli()
        assert code == 0, err
        assert "does not follow the endpoint" in out + err and "restart it to serve version 2" in out + err
    finally:
        proc.terminate()
        proc.wait(timeout=30)
