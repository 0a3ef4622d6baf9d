"""Monitoring in the web app: an out-of-distribution answer says it is not sure the image is a
clothing item (the model's guess kept, de-emphasised); "Was this right?" answers go through
``POST /api/feedback`` to the feedback store (a folder here), validated, with no image kept;
without ``EDGE_FEEDBACK_URI`` the control is hidden and the route says feedback is off."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.serving.tiny_model import LABELS
from tests.webapp.helpers import FakeClient, sample_bytes
from vertex_edge.gcp.files import Files
from vertex_edge.monitoring.feedback import read_feedback
from vertex_edge.monitoring.settings import privacy_line
from vertex_edge.webapp.app import create_app
from vertex_edge.webapp.client import OodFlag, parse_response
from vertex_edge.webapp.settings import WebappSettings

FRAGMENT = {"X-Fragment": "1"}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "feedback"


@pytest.fixture
def with_feedback(fake: FakeClient, store: Path) -> Iterator[TestClient]:
    app = create_app(WebappSettings(feedback_uri=str(store)), client=fake)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def records(store: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(store.rglob("*.jsonl")) for line in path.read_text().splitlines()]


# --------------------------------------------------------------------------- out of distribution


def test_an_out_of_distribution_answer_says_it_is_not_sure_and_keeps_the_guess_small(client: TestClient, fake) -> None:
    fake.class_id, fake.ood = 8, OodFlag(score=12.5, flag=True)
    html = client.post("/", data={"sample": "7-sneaker"}, headers=FRAGMENT).text
    assert 'data-testid="ood">Not sure this is a clothing item<' in html
    assert "does not look like the clothing photos the model learned from" in html
    assert 'Its best guess: <span class="guess-label" data-testid="label">Bag</span>' in html
    assert 'class="label"' not in html  # no big "Bag"
    page = client.post("/", data={"sample": "7-sneaker"}).text
    assert "<title>Not sure · What is this garment?" in page


def test_an_in_distribution_answer_is_shown_as_before(client: TestClient, fake) -> None:
    fake.ood = OodFlag(score=0.3, flag=False)
    html = client.post("/", data={"sample": "7-sneaker"}, headers=FRAGMENT).text
    assert '<p class="label" data-testid="label">Sneaker</p>' in html and 'data-testid="ood"' not in html


def test_the_api_returns_the_request_id_and_the_ood_verdict(client: TestClient, fake) -> None:
    fake.ood = OodFlag(score=12.5, flag=True)
    body = client.post("/api/predict", files={"file": ("s.png", sample_bytes(), "image/png")}).json()
    assert body["request_id"] == "req-0000"
    assert body["ood"] == {"score": 12.5, "flag": True}
    fake.ood = None
    body = client.post("/api/predict", files={"file": ("s.png", sample_bytes(), "image/png")}).json()
    assert body["request_id"] == "req-0001" and body["ood"] is None  # a model without the monitor


def test_the_response_parser_carries_request_id_and_ood_and_refuses_a_broken_verdict() -> None:
    item = {"label": "Bag", "class_id": 8, "probabilities": [0.1] * 10, "request_id": "r-1",
            "ood": {"score": 3.5, "flag": True}}  # fmt: skip
    pred = parse_response({"predictions": [item]})
    assert pred.request_id == "r-1" and pred.ood == OodFlag(3.5, True)
    assert parse_response({"predictions": [{**item, "ood": None}]}).ood is None
    from vertex_edge.errors import CloudError

    with pytest.raises(CloudError, match="does not understand"):
        parse_response({"predictions": [{**item, "ood": {"score": "far"}}]})


# --------------------------------------------------------------------------- feedback


def test_feedback_is_hidden_and_refused_when_no_store_is_set(client: TestClient) -> None:
    html = client.post("/", data={"sample": "7-sneaker"}, headers=FRAGMENT).text
    assert 'data-testid="feedback"' not in html
    resp = client.post("/api/feedback", json={"request_id": "req-0000", "label": "Sneaker"})
    assert resp.status_code == 404
    assert resp.json()["error"] == "feedback_off" and "EDGE_FEEDBACK_URI" in resp.json()["message"]


def test_the_page_asks_was_this_right_with_every_label(with_feedback: TestClient) -> None:
    html = with_feedback.post("/", data={"sample": "7-sneaker"}, headers=FRAGMENT).text
    assert 'data-testid="feedback"' in html and "Was this right?" in html
    assert 'data-request-id="req-0000"' in html and 'data-predicted="7"' in html
    for name in LABELS:
        assert f'<option value="{name}"' in html
    assert '<option value="Sneaker" selected>' in html


def test_a_feedback_answer_is_stored_against_the_request_id_without_the_image(
    with_feedback: TestClient, store: Path
) -> None:
    with_feedback.post("/", data={"sample": "7-sneaker"})  # the endpoint named its classes
    resp = with_feedback.post("/api/feedback", json={"request_id": "req-0000", "label": "Ankle boot", "predicted": 7})
    assert resp.status_code == 201, resp.text
    assert resp.json() == {"status": "recorded", "request_id": "req-0000", "instance": 0, "class_id": 9,
                           "label": "Ankle boot"}  # fmt: skip
    (record,) = records(store)
    assert set(record) == {"request_id", "instance", "class_id", "label", "time", "predicted"}
    assert (record["request_id"], record["class_id"], record["predicted"]) == ("req-0000", 9, 7)
    # by index too; the monitor reads them back by (request id, instance), the newest winning
    assert with_feedback.post("/api/feedback", json={"request_id": "req-0000", "label": 7}).status_code == 201
    assert read_feedback(str(store), Files()) == {("req-0000", 0): 7}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"request_id": "req-1", "label": "Hat"}, "label 'Hat': expected one of T-shirt/top, Trouser"),
        ({"request_id": "req-1", "label": 10}, "label 10: expected one of"),
        ({"request_id": "not an id!", "label": "Bag"}, "request id 'not an id!'"),
        ({"request_id": "x" * 300, "label": "Bag"}, "request id"),
        ({"label": "Bag"}, "request_id: Field required"),
        ({"request_id": "req-1", "label": "Bag", "instance": -1}, "instance: Input should be greater than or equal to 0"),
        ([1, 2], "body: Input should be a valid dictionary"),
    ],
    ids=["unknown-label", "label-index", "bad-id", "long-id", "no-id", "negative-instance", "not-an-object"],
)
def test_a_bad_answer_is_a_400_naming_what_is_wrong(with_feedback: TestClient, store: Path, body, message) -> None:
    resp = with_feedback.post("/api/feedback", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_feedback" and message in resp.json()["message"]
    assert records(store) == []


def test_a_feedback_body_that_is_not_json_or_too_large_is_refused(with_feedback: TestClient) -> None:
    resp = with_feedback.post("/api/feedback", content=b"label=Bag", headers={"content-type": "text/plain"})
    assert resp.status_code == 400 and "not JSON" in resp.json()["message"]
    resp = with_feedback.post("/api/feedback", content=b'{"request_id": "' + b"a" * 20000 + b'"}')
    assert resp.status_code == 413


def test_a_store_that_cannot_be_written_is_a_502_and_the_app_goes_on(fake: FakeClient, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    app = create_app(WebappSettings(feedback_uri=str(blocker / "feedback")), client=fake)
    with TestClient(app, raise_server_exceptions=False) as client:
        resp = client.post("/api/feedback", json={"request_id": "req-1", "label": "Bag"})
        assert resp.status_code == 502 and resp.json()["error"] == "feedback_error"
        assert client.get("/healthz").status_code == 200


def test_the_privacy_line_says_what_is_kept(client: TestClient) -> None:
    html = client.get("/").text
    assert privacy_line() in html.replace("&#34;", '"').replace("&#39;", "'") or privacy_line()[:60] in html
    app = create_app(WebappSettings(model_input_logged=True), client=FakeClient())
    with TestClient(app) as logged:
        assert "also logs the 28" in logged.get("/").text


def test_openapi_documents_feedback_and_the_new_answers(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    predict = spec["paths"]["/api/predict"]["post"]
    assert "multipart/form-data" in predict["requestBody"]["content"]
    for status in ("400", "408", "413", "422", "502", "503", "504"):
        assert status in predict["responses"], status
    assert "Retry-After" in predict["responses"]["503"]["headers"]
    props = spec["components"]["schemas"]["PredictResponse"]["properties"]
    assert {"request_id", "ood"} <= set(props)
    feedback = spec["paths"]["/api/feedback"]["post"]
    schema = feedback["requestBody"]["content"]["application/json"]["schema"]
    assert {"request_id", "label", "instance"} <= set(schema["properties"]) and "request_id" in schema["required"]
    assert {"201", "400", "404", "413", "503"} <= set(feedback["responses"])
