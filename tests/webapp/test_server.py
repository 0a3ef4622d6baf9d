"""The web app behind a real uvicorn: against a real local prediction server process, as
``python edge.py webapp``, and with a chunked upload that must be cut off early."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serving.tiny_model import LABELS
from tests.webapp.helpers import (
    MODEL_VERSION,
    FakeClient,
    chunked_upload_until_answered,
    free_port,
    sample_bytes,
    serve_in_thread,
    stop,
    wait_http,
)
from vertex_edge.webapp.app import create_app
from vertex_edge.webapp.settings import WebappSettings

pytestmark = pytest.mark.slow


@pytest.mark.integration
def test_predicts_through_a_real_local_prediction_server(prediction_server: str) -> None:
    app = create_app(WebappSettings(endpoint_url=prediction_server))
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        resp = http.post("/api/predict", files={"file": ("sneaker.png", sample_bytes("7-sneaker"), "image/png")})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["label"] in LABELS
        assert body["label"] == LABELS[body["class_id"]]
        assert body["model_version"] == MODEL_VERSION  # from the model card, via the server
        assert sum(p["probability"] for p in body["probabilities"]) == pytest.approx(1.0, abs=1e-4)
        page = http.post("/", data={"sample": "9-ankle-boot"})
        assert page.status_code == 200
        assert 'data-testid="label">' in page.text and MODEL_VERSION in page.text


def test_a_chunked_upload_over_the_limit_is_refused_before_it_is_all_sent() -> None:
    app = create_app(WebappSettings(max_upload_mb=1), client=FakeClient())
    with serve_in_thread(app) as base:
        answer, sent = chunked_upload_until_answered(int(base.rsplit(":", 1)[1]), limit_bytes=64 * 1024 * 1024)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"too_large"' in answer
    # what was sent before the answer is at most the limit plus the kernel's socket buffers
    assert sent < 16 * 1024 * 1024, f"the server took {sent} bytes of a body over its 1 MB limit"


def _edge(repo: Path, *args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(repo / "edge.py"), *args],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def test_edge_py_webapp_serves_the_page_and_stops_cleanly(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_WEBAPP_", "EDGE_GCP_", "EDGE_ENDPOINT"))}
    env["EDGE_WEBAPP_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}/predict"  # nothing there
    proc = _edge(repo, "--repo", str(tmp_path), "webapp", "--port", str(port), env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc, timeout=60)
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and "What is this garment?" in page.text
        resp = httpx.post(f"http://127.0.0.1:{port}/", data={"sample": "7-sneaker"}, timeout=10)
        assert resp.status_code == 502 and "cannot be reached" in resp.text
    finally:
        out = stop(proc)
    assert f"http://127.0.0.1:{port}/" in out
    assert "nothing answers at that address" in out  # the warning that the server is not up
    assert "Traceback" not in out
    assert '"path": "/"' not in out and "POST / 502" in out  # request logs (text format for the CLI)


def test_edge_py_webapp_refuses_a_port_in_use(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _edge(repo, "--repo", str(tmp_path), "webapp", "--port", str(port), env=dict(os.environ))
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in out
    assert "Traceback" not in out


def test_invalid_settings_stop_the_container_entry_point_at_start(tmp_path: Path) -> None:
    env = dict(os.environ, EDGE_WEBAPP_BACKEND="vertex", EDGE_WEBAPP_TIMEOUT_S="-1")
    env.pop("EDGE_GCP_PROJECT", None)
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "vertex_edge.webapp"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "EDGE_WEBAPP_TIMEOUT_S" in proc.stderr and "'-1'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - start < 30
