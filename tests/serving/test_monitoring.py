"""The server's monitoring wiring: each prediction carries a request id (always) and, for a model
with the monitor output, its OOD score and flag; predictions are captured off the request path
(EDGE_CAPTURE_*), with the capture's counters at GET /capture."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.monitoring.helpers import heldout
from tests.serving.conftest import ready
from tests.serving.tiny_model import bar_image
from vertex_edge.monitoring.capture import CaptureSettings
from vertex_edge.serving.app import create_app
from vertex_edge.serving.settings import ServerSettings


def records_in(folder: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(folder.rglob("*.jsonl")) for line in f.read_text().splitlines()]


def body_of(prepared: int = 2) -> dict:
    images, _ = heldout(prepared, seed=30)
    odd = np.random.default_rng(0).uniform(0, 255, size=(28, 28))
    return {"instances": [*(i.astype(int).tolist() for i in images), odd.astype(int).tolist()]}


def test_predictions_carry_ood_and_request_id_and_are_captured(prepared_model: Path, tmp_path: Path) -> None:
    capture = CaptureSettings(uri=str(tmp_path / "records"), flush_s=0.05)
    app = create_app(ServerSettings(storage_uri=str(prepared_model), capture=capture))
    with TestClient(app) as client:
        ready(client)
        answer = client.post("/predict", json=body_of()).json()
        again = client.post("/predict", json={"instances": body_of()["instances"][:1]}).json()
        stats = client.get("/capture").json()
    predictions = answer["predictions"]
    assert [set(p) for p in predictions] == [{"label", "class_id", "probabilities", "ood", "request_id"}] * 3
    assert [len(p["probabilities"]) for p in predictions] == [10] * 3  # the monitor columns are not answered
    assert len({p["request_id"] for p in predictions}) == 1
    assert again["predictions"][0]["request_id"] != predictions[0]["request_id"]
    assert [p["ood"]["flag"] for p in predictions] == [False, False, True]
    assert all(isinstance(p["ood"]["score"], float) for p in predictions)
    assert predictions[2]["ood"]["score"] > predictions[0]["ood"]["score"]
    assert stats["enabled"] and stats["captured"] == 4 and stats["dropped"] == 0 and stats["sample_rate"] == 1.0
    records = records_in(tmp_path / "records")  # the rest was written when the app stopped
    assert [r["instance"] for r in records] == [0, 1, 2, 0]
    assert [r["request_id"] for r in records[:3]] == [predictions[0]["request_id"]] * 3
    assert [r["ood_flag"] for r in records[:3]] == [False, False, True]
    assert {r["model_version"] for r in records} == {answer["model_version"]}


def test_a_model_without_the_monitor_output_has_no_ood_field(model_dir: Path) -> None:
    with TestClient(create_app(ServerSettings(storage_uri=str(model_dir)))) as client:
        ready(client)
        answer = client.post("/predict", json={"instances": [bar_image(2).tolist()], "parameters": {"labels": True}})
        assert client.get("/capture").json() == {"enabled": False}
    (prediction,) = answer.json()["predictions"]
    assert set(prediction) == {"label", "class_id", "probabilities", "request_id", "labels"}
    assert prediction["class_id"] == 2 and prediction["request_id"]


def test_a_capture_that_cannot_start_stops_the_server_with_the_reason(model_dir: Path) -> None:
    reasons: list[str] = []
    settings = ServerSettings(storage_uri=str(model_dir), capture=CaptureSettings(uri="ftp://nowhere/records"))
    with TestClient(create_app(settings, on_fatal=reasons.append)) as client:
        health = client.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "failed"
    assert reasons and "cannot capture predictions to ftp://nowhere/records" in reasons[0]
    assert "expected a folder or gs://bucket/path" in reasons[0]


def test_the_openapi_document_describes_the_new_fields(model_dir: Path) -> None:
    spec = create_app(ServerSettings(storage_uri=str(model_dir))).openapi()
    prediction = spec["components"]["schemas"]["Prediction"]
    assert "request_id" in prediction["required"] and "ood" in prediction["properties"]
    assert "/capture" in spec["paths"]


@pytest.mark.slow
def test_the_server_process_captures_from_the_environment(prepared_model: Path, tmp_path: Path, server_factory) -> None:
    records = tmp_path / "records"
    server = server_factory(
        {"AIP_STORAGE_URI": str(prepared_model), "EDGE_CAPTURE_URI": str(records), "EDGE_CAPTURE_FLUSH_S": "0.1"}
    )
    answer = httpx.post(server.predict_url, json=body_of(), timeout=30).json()
    stats = httpx.get(server.base_url + "/capture", timeout=10).json()
    assert stats["enabled"] and stats["captured"] == 3
    assert server.stop() == 0  # a graceful shutdown: the capture wrote what it held
    assert [r["request_id"] for r in records_in(records)] == [answer["predictions"][0]["request_id"]] * 3
    access = [json.loads(line) for line in server.logs().splitlines() if '"vertex_edge.serving.access"' in line]
    assert any(e.get("request_id") == answer["predictions"][0]["request_id"] for e in access)
