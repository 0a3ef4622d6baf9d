"""The two prediction clients, offline: HTTP through httpx's MockTransport, Vertex AI through an
injected endpoint factory (never the network)."""

from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc

from tests.webapp.helpers import probabilities
from vertex_edge.errors import CloudError
from vertex_edge.webapp.client import (
    HttpPredictionClient,
    VertexPredictionClient,
    build_client,
    parse_response,
)
from vertex_edge.webapp.settings import WebappSettings

IMAGE = np.arange(784, dtype=np.float32).reshape(28, 28) % 256
GOOD = {
    "predictions": [{"label": "Bag", "class_id": 8, "probabilities": list(probabilities(8, 0.8))}],
    "model_version": "v42",
}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --------------------------------------------------------------------------- HTTP


def http_client(handler, timeout: float = 3.0) -> HttpPredictionClient:
    return HttpPredictionClient("http://server:8080/predict", timeout=timeout, transport=httpx.MockTransport(handler))


def test_http_client_posts_one_28x28_instance_and_parses_the_answer() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=GOOD)

    async def go():
        client = http_client(handler)
        try:
            return await client.predict(IMAGE)
        finally:
            await client.aclose()

    pred = run(go())
    assert (pred.label, pred.class_id, pred.model_version) == ("Bag", 8, "v42")
    assert pred.confidence == pytest.approx(0.8)
    assert seen[0].method == "POST" and str(seen[0].url) == "http://server:8080/predict"
    body = json.loads(seen[0].content)
    assert list(body) == ["instances", "parameters"] and len(body["instances"]) == 1
    assert body["parameters"] == {"labels": True}  # the page names every class from the answer
    np.testing.assert_array_equal(np.array(body["instances"][0], dtype=np.float32), IMAGE)


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (httpx.ConnectError("refused"), "cannot be reached"),
        (httpx.ReadTimeout("slow"), "did not answer within 3 seconds"),
        (httpx.Response(503, text="upstream connect error"), "returned an error (HTTP 503)"),
        (httpx.Response(200, text="not json"), "does not understand"),
        (httpx.Response(200, json={"predictions": [{"label": "Bag", "class_id": 12, "probabilities": [0.1] * 10}]}),
         "does not understand"),
        (httpx.Response(200, json={"predictions": [{"label": "Bag", "class_id": 8, "probabilities": [2.0] * 10}]}),
         "does not understand"),
    ],
    ids=["refused", "timeout", "503", "not-json", "bad-class", "bad-probabilities"],
)
def test_http_client_failures_are_cloud_errors_without_internals(behaviour, message, caplog) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(behaviour, Exception):
            raise behaviour
        return behaviour

    with caplog.at_level(logging.WARNING, logger="vertex_edge.webapp.client"):
        with pytest.raises(CloudError) as info:
            run(http_client(handler).predict(IMAGE))
    assert message in info.value.message
    assert "server:8080" not in info.value.message  # addresses go to the log, not to users
    assert any("server:8080" in r.getMessage() for r in caplog.records)


def test_model_version_can_come_from_the_prediction_item() -> None:
    body = {"predictions": [{**GOOD["predictions"][0], "model_version": "item-v"}]}
    assert parse_response(body).model_version == "item-v"
    assert parse_response({"predictions": GOOD["predictions"]}).model_version == "unknown"


# --------------------------------------------------------------------------- Vertex AI


class FakeEndpoint:
    def __init__(self, response: Any = None, error: BaseException | None = None) -> None:
        self.response = response
        self.error = error
        self.calls: list[dict[str, Any]] = []

    def predict(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        return self.response


def vertex_response(**overrides: Any) -> SimpleNamespace:
    # what aiplatform's Prediction looks like: numbers from protobuf Values are floats
    pred = {"label": "Sneaker", "class_id": 7.0, "probabilities": list(probabilities(7, 0.7))}
    fields = dict(
        predictions=[pred],
        deployed_model_id="555",
        metadata=None,
        model_version_id="3",
        model_resource_name="projects/123/locations/us-central1/models/777",
        explanations=None,
    )
    fields.update(overrides)
    return SimpleNamespace(**fields)


def vertex_client(endpoint: FakeEndpoint, made: list[dict[str, Any]] | None = None) -> VertexPredictionClient:
    def factory(**kwargs: Any) -> FakeEndpoint:
        if made is not None:
            made.append(kwargs)
        return endpoint

    return VertexPredictionClient(
        project="my-project-123", region="us-central1", endpoint_id="4242", timeout=7, endpoint_factory=factory
    )


def test_vertex_client_builds_the_endpoint_lazily_from_settings_and_predicts() -> None:
    endpoint = FakeEndpoint(vertex_response())
    made: list[dict[str, Any]] = []
    client = vertex_client(endpoint, made)
    assert made == []  # nothing is built (no network) until the first prediction
    pred = run(client.predict(IMAGE))
    assert made == [{"endpoint_name": "4242", "project": "my-project-123", "location": "us-central1"}]
    assert (pred.label, pred.class_id) == ("Sneaker", 7)
    assert pred.model_version == "model 777 v3"
    call = endpoint.calls[0]
    assert call["timeout"] == 7 and len(call["instances"]) == 1
    np.testing.assert_array_equal(np.array(call["instances"][0], dtype=np.float32), IMAGE)
    run(client.predict(IMAGE))
    assert len(made) == 1  # built once, reused


def test_vertex_model_version_from_the_container_wins() -> None:
    pred = {"label": "Sneaker", "class_id": 7, "probabilities": list(probabilities(7)), "model_version": "card-v9"}
    endpoint = FakeEndpoint(vertex_response(predictions=[pred]))
    assert vertex_client(endpoint).predict_sync(IMAGE).model_version == "card-v9"
    bare = FakeEndpoint(vertex_response(model_resource_name="", model_version_id=""))
    assert vertex_client(bare).predict_sync(IMAGE).model_version == "deployed model 555"


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (gexc.DeadlineExceeded("deadline"), "did not answer within 7 seconds"),
        (gexc.NotFound("Endpoint projects/my-project-123/locations/us-central1/endpoints/4242 not found"), "was not found"),
        (gexc.PermissionDenied("aiplatform.endpoints.predict denied"), "not allowed"),
        (auth_exc.DefaultCredentialsError("no ADC"), "no credentials"),
        (gexc.ServiceUnavailable("unavailable"), "cannot be reached"),
        (gexc.FailedPrecondition("no deployed model"), "no model ready"),
        (gexc.InternalServerError("boom"), "returned an error (HTTP 500)"),
        (ValueError("something odd in the SDK"), "call failed"),
    ],
    ids=["deadline", "not-found", "denied", "no-credentials", "unavailable", "no-model", "500", "other"],
)
def test_vertex_failures_are_cloud_errors_safe_to_show(error: BaseException, message: str, caplog) -> None:
    client = vertex_client(FakeEndpoint(error=error))
    with caplog.at_level(logging.WARNING, logger="vertex_edge.webapp.client"):
        with pytest.raises(CloudError) as info:
            run(client.predict(IMAGE))
    assert message in info.value.message
    assert "my-project-123" not in info.value.message and "4242" not in info.value.message
    assert any("my-project-123" in r.getMessage() for r in caplog.records)  # the details are logged


def test_failure_to_build_the_endpoint_is_a_cloud_error_and_is_retried() -> None:
    attempts = []

    def factory(**kwargs: Any) -> FakeEndpoint:
        attempts.append(kwargs)
        if len(attempts) == 1:
            raise auth_exc.DefaultCredentialsError("no ADC")
        return FakeEndpoint(vertex_response())

    client = VertexPredictionClient(
        project="my-project-123", region="us-central1", endpoint_id="4242", timeout=7, endpoint_factory=factory
    )
    with pytest.raises(CloudError):
        client.predict_sync(IMAGE)
    assert client.predict_sync(IMAGE).label == "Sneaker"


def test_build_client_follows_the_backend_setting() -> None:
    assert isinstance(build_client(WebappSettings()), HttpPredictionClient)
    vertex = build_client(
        WebappSettings(backend="vertex", project="my-project-123", region="us-central1", endpoint_id="1")
    )
    assert isinstance(vertex, VertexPredictionClient)
    assert (vertex.project, vertex.region, vertex.endpoint_id) == ("my-project-123", "us-central1", "1")


def test_the_vertex_sdk_is_not_imported_to_build_the_client() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from vertex_edge.webapp.client import build_client\n"
        "from vertex_edge.webapp.app import create_app\n"
        "from vertex_edge.webapp.settings import WebappSettings\n"
        "s = WebappSettings(backend='vertex', project='my-project-123', region='us-central1', endpoint_id='1')\n"
        "create_app(s); build_client(s)\n"
        "assert 'google.cloud.aiplatform' not in sys.modules, 'imported at start-up'\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_vertex_predictions_carry_the_request_id_and_the_ood_verdict() -> None:
    # the prediction server's fields come back through Vertex AI as protobuf values (floats, bools)
    pred = {"label": "Bag", "class_id": 8.0, "probabilities": list(probabilities(8)), "request_id": "a1b2c3",
            "ood": {"score": 7.25, "flag": True}}  # fmt: skip
    answer = vertex_client(FakeEndpoint(vertex_response(predictions=[pred]))).predict_sync(IMAGE)
    assert answer.request_id == "a1b2c3"
    assert (answer.ood.score, answer.ood.flag) == (7.25, True)
    plain = vertex_client(FakeEndpoint(vertex_response())).predict_sync(IMAGE)
    assert plain.request_id is None and plain.ood is None  # an older server, or no monitor


def test_http_client_reads_at_most_the_response_limit() -> None:
    big = b'{"predictions": [' + b" " * 300_000 + b"]}"

    async def go() -> Any:
        client = HttpPredictionClient(
            "http://server:8080/predict", timeout=3, max_response_bytes=100_000,
            transport=httpx.MockTransport(lambda request: httpx.Response(200, content=big)),
        )  # fmt: skip
        try:
            return await client.predict(IMAGE)
        finally:
            await client.aclose()

    with pytest.raises(CloudError, match="larger than the 0.0953674 MB limit"):
        run(go())
