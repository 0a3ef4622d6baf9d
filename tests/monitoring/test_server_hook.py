"""The proposed serving wiring (benchmarks.monitoring_server.install) on the real prediction server app:
each prediction carries its OOD score, flag and request id, and is captured off the request path."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from benchmarks.monitoring_server import install
from tests.monitoring.helpers import heldout
from vertex_edge.monitoring.capture import Capture, CaptureSettings
from vertex_edge.serving import app as server_app
from vertex_edge.serving.settings import ServerSettings


def ready(client: TestClient) -> None:
    deadline = time.monotonic() + 30
    while client.get("/health").status_code != 200:
        assert time.monotonic() < deadline, client.get("/health").text
        time.sleep(0.05)


def test_predictions_carry_ood_and_request_id_and_are_captured(
    prepared_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    capture = Capture.from_settings(CaptureSettings(uri=str(tmp_path / "records"), flush_s=0.05))
    install(capture, monkeypatch.setattr)
    capture.start()
    images, _ = heldout(2, seed=30)
    odd = np.random.default_rng(0).uniform(0, 255, size=(28, 28))
    body = {"instances": [images[0].astype(int).tolist(), images[1].astype(int).tolist(), odd.astype(int).tolist()]}
    try:
        with TestClient(server_app.create_app(ServerSettings(storage_uri=str(prepared_model)))) as client:
            ready(client)
            answer = client.post("/predict", json=body).json()
            stats = client.get("/capture").json()
    finally:
        capture.stop()
    predictions = answer["predictions"]
    assert [set(p) for p in predictions] == [{"label", "class_id", "probabilities", "ood", "request_id"}] * 3
    assert len({p["request_id"] for p in predictions}) == 1
    assert [p["ood"]["flag"] for p in predictions] == [False, False, True]
    assert stats["captured"] == 3 and stats["dropped"] == 0
    records = [json.loads(line) for f in (tmp_path / "records").rglob("*.jsonl") for line in f.read_text().splitlines()]
    assert [r["instance"] for r in records] == [0, 1, 2]
    assert {r["request_id"] for r in records} == {predictions[0]["request_id"]}
    assert [r["ood_flag"] for r in records] == [False, False, True]
