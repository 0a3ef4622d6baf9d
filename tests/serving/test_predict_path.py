"""The predict route is answered before FastAPI (vertex_edge.serving.predict.Predictor): the one-step
numpy conversion and the per-instance path give the same answers, FastAPI still answers
everything else, a failing model call is a logged 500 with the documented body."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.serving.tiny_model import bar_image, write_model_dir
from vertex_edge.serving.app import create_app
from vertex_edge.serving.settings import ServerSettings


@pytest.fixture
def client(tmp_path: Path):
    folder = write_model_dir(tmp_path / "model")
    app = create_app(ServerSettings(storage_uri=str(folder), max_instances=8))
    with TestClient(app) as http:
        deadline = time.monotonic() + 30
        while http.get("/health").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        yield http


def test_every_way_of_sending_an_image_gets_the_same_answer(client: TestClient) -> None:
    images = [bar_image(k).astype(int).tolist() for k in (3, 7)]
    flat = [np.asarray(img).reshape(-1).tolist() for img in images]
    floats = [[[float(v) for v in row] for row in img] for img in images]
    bodies = [
        json.dumps({"instances": images}, separators=(",", ":")),  # one numpy conversion
        json.dumps({"instances": floats}),
        json.dumps({"instances": flat, "parameters": {}}),
        json.dumps({"instances": images, "parameters": {"strict": True}}),  # a JSON true: checked per instance
    ]
    answers = [client.post("/predict", content=body, headers={"content-type": "application/json"}) for body in bodies]
    assert [r.status_code for r in answers] == [200] * 4
    # one request id per request, on each of its predictions; everything else is the same
    ids = [{p.pop("request_id") for p in body["predictions"]} for body in (r.json() for r in answers)]
    assert [len(i) for i in ids] == [1] * 4 and len(set.union(*ids)) == 4
    assert len({r.content.replace(next(iter(i)).encode(), b"") for r, i in zip(answers, ids, strict=True)}) == 1
    assert [p["class_id"] for p in answers[0].json()["predictions"]] == [3, 7]
    assert answers[0].headers["content-type"] == "application/json"
    assert int(answers[0].headers["content-length"]) == len(answers[0].content)
    single = client.post("/predict", json={"instances": images[1:]}).json()["predictions"]
    first = answers[0].json()["predictions"][1:]
    assert [{**p, "request_id": ""} for p in single] == [{**p, "request_id": ""} for p in first]


def test_fastapi_still_answers_the_other_routes_and_methods(client: TestClient) -> None:
    assert client.get("/predict").status_code == 405
    assert client.get("/nowhere").status_code == 404
    assert client.post("/predict/", json={"instances": [bar_image(1).tolist()]}).status_code in (200, 307, 404)
    spec = client.get("/openapi.json").json()
    assert spec["paths"]["/predict"]["post"]["operationId"] == "predict_predict_post"
    assert set(spec["paths"]["/predict"]["post"]["responses"]) >= {"200", "400", "413", "415", "503"}


def test_a_failing_model_call_is_a_logged_500(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        version, labels = "broken", ("a", "b")

        def predict(self, batch: np.ndarray, *, wide: bool = False) -> np.ndarray:
            raise RuntimeError("the model fell over")

    client.app.state.serving.model = Broken()
    with caplog.at_level(logging.ERROR):
        r = client.post("/predict", json={"instances": [bar_image(1).tolist()]})
    assert r.status_code == 500
    assert r.json() == {"error": {"code": 500, "status": "INTERNAL", "message": "internal error", "details": []}}
    assert "the model fell over" not in r.text
    assert any("model call failed" in rec.getMessage() for rec in caplog.records)
