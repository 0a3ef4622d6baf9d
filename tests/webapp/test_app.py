"""The web app's page and JSON API, with the endpoint client replaced through a dependency override."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import struct
import zlib

import httpx
import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from PIL import Image

from tests.serving.tiny_model import LABELS
from tests.webapp.helpers import MODEL_VERSION, REPO, png_bytes, probabilities, sample_bytes
from vertex_edge.errors import CloudError
from vertex_edge.preprocess import decode_image, image_to_array
from vertex_edge.webapp.app import create_app, get_client
from vertex_edge.webapp.client import HttpPredictionClient, parse_response
from vertex_edge.webapp.logs import JsonFormatter
from vertex_edge.webapp.samples import load_samples
from vertex_edge.webapp.settings import WebappSettings

FRAGMENT = {"X-Fragment": "1"}


def upload(data: bytes, name: str = "photo.png", content_type: str = "image/png") -> dict:
    return {"file": (name, data, content_type)}


def assert_no_internals(text: str) -> None:
    for leak in ("Traceback", 'File "', "127.0.0.1:", "site-packages", "Exception:"):
        assert leak not in text


# --------------------------------------------------------------------------- the page


def test_page_has_upload_drop_zone_and_a_gallery_of_ten_samples(client: TestClient) -> None:
    resp = client.get("/")
    assert resp.status_code == 200
    html = resp.text
    assert 'type="file"' in html and 'id="drop"' in html
    assert html.count('name="sample"') == 10
    for name in LABELS:
        assert name in html
    assert "up to 5&nbsp;MB" in html
    assert 'data-testid="empty"' in html


def test_page_loads_nothing_from_other_hosts(client: TestClient) -> None:
    html = client.get("/").text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the page must work offline (no CDN)"
    for asset in re.findall(r"""(?:src|href)="(/static/[^"?]+)""", html):
        assert client.get(asset).status_code == 200, asset


def test_picking_a_sample_shows_label_chart_model_input_and_version(client: TestClient, fake) -> None:
    resp = client.post("/", data={"sample": "7-sneaker"})
    assert resp.status_code == 200
    html = resp.text
    assert '<p class="label" data-testid="label">Sneaker</p>' in html
    assert html.count('class="bar') >= 10 and html.count("<rect") == 10
    assert '<li class="bar top">' in html
    assert "91.0%" in html
    assert MODEL_VERSION in html
    assert "✓ correct" in html  # the sample's own label agrees with the prediction
    match = re.search(r'data-testid="model-input" src="data:image/png;base64,([^"]+)"', html)
    assert match, "the 28x28 image the model saw is on the page"
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(match.group(1)))))
    assert shown.shape == (28, 28)
    expected = image_to_array(decode_image(sample_bytes("7-sneaker")))
    np.testing.assert_array_equal(fake.calls[0], expected)
    assert np.abs(shown.astype(float) - np.rint(expected)).max() <= 1
    assert resp.headers["cache-control"] == "no-store"


def test_uploading_a_file_from_the_form_shows_the_result(client: TestClient, fake) -> None:
    resp = client.post("/", files=upload(sample_bytes("1-trouser")))
    assert resp.status_code == 200
    assert 'data-testid="label">Sneaker<' in resp.text  # what the (fake) endpoint said
    assert "data-original" in resp.text  # the page script shows the upload beside the 28x28
    assert len(fake.calls) == 1


def test_javascript_gets_only_the_result_fragment(client: TestClient) -> None:
    resp = client.post("/", data={"sample": "8-bag"}, headers=FRAGMENT)
    assert resp.status_code == 200
    assert "<html" not in resp.text and 'data-testid="label"' in resp.text
    assert "✗ missed" in resp.text  # the fake says Sneaker for a bag


def test_no_image_and_unknown_sample_are_explained(client: TestClient, fake) -> None:
    resp = client.post("/", data={})
    assert resp.status_code == 400 and "Choose an image first" in resp.text
    resp = client.post("/", files=upload(b"", name=""))
    assert resp.status_code == 400 and "Choose an image first" in resp.text
    resp = client.post("/", data={"sample": "../../etc/passwd"})
    assert resp.status_code == 400 and "Unknown sample" in resp.text
    assert fake.calls == []


# --------------------------------------------------------------------------- the JSON API


def test_api_predict_returns_label_probabilities_model_input_version(client: TestClient, fake) -> None:
    data = sample_bytes("7-sneaker")
    resp = client.post("/api/predict", files=upload(data))
    assert resp.status_code == 200
    body = resp.json()
    assert body["label"] == "Sneaker" and body["class_id"] == 7
    assert body["confidence"] == pytest.approx(0.91)
    assert [p["label"] for p in body["probabilities"]] == list(LABELS)
    assert sum(p["probability"] for p in body["probabilities"]) == pytest.approx(1.0)
    assert body["model_version"] == MODEL_VERSION
    assert set(body["timings"]) == {"preprocess_ms", "endpoint_ms", "total_ms"}
    seen = Image.open(io.BytesIO(base64.b64decode(body["model_input_png"])))
    assert seen.size == (28, 28) and seen.mode == "L"
    # the endpoint got exactly the shared preprocessing's 28x28 array
    assert fake.calls[0].shape == (28, 28)
    np.testing.assert_array_equal(fake.calls[0], image_to_array(decode_image(data)))


@pytest.mark.parametrize(
    ("data", "name", "ctype"),
    [
        (b"just some text, not a picture\n", "notes.txt", "text/plain"),
        (png_bytes()[:60], "truncated.png", "image/png"),  # header intact, pixel data cut off
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "corrupt.png", "image/png"),
        (b"", "empty.png", "image/png"),
    ],
    ids=["text", "truncated", "corrupt-header", "empty"],
)
def test_non_image_or_corrupt_upload_is_a_400_with_a_message(client: TestClient, fake, data, name, ctype) -> None:
    resp = client.post("/api/predict", files=upload(data, name, ctype))
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"] == "invalid_image" and body["message"] and body["request_id"]
    assert_no_internals(resp.text)
    page = client.post("/", files=upload(data, name, ctype))
    assert page.status_code == 400
    assert "That file is not an image the model can read" in page.text and 'role="alert"' in page.text
    assert_no_internals(page.text)
    assert fake.calls == []


def test_upload_over_the_size_limit_is_a_413(client: TestClient, fake) -> None:
    big = b"\x89PNG" + b"\0" * (5 * 1024 * 1024 + 1)
    resp = client.post("/api/predict", files=upload(big))
    assert resp.status_code == 413
    assert resp.json()["error"] == "too_large" and "5 MB" in resp.json()["message"]
    page = client.post("/", files=upload(big))
    assert page.status_code == 413 and "The image is too large" in page.text
    assert fake.calls == []


def test_a_file_just_over_the_limit_is_refused_and_one_at_it_is_read(fake) -> None:
    settings = WebappSettings(max_upload_mb=0.01)  # 10485 bytes
    app = create_app(settings)
    app.dependency_overrides[get_client] = lambda: fake
    limit = settings.max_upload_bytes
    with TestClient(app) as client:
        resp = client.post("/api/predict", files=upload(b"x" * (limit + 1)))
        assert resp.status_code == 413
        resp = client.post("/api/predict", files=upload(b"x" * limit))
        assert resp.status_code == 400  # read, then found not to be an image


def test_chunked_upload_without_content_length_is_refused_over_the_limit(fake) -> None:
    # (that the rest of a chunked body is not even read is checked against a real server in test_server.py)
    settings = WebappSettings(max_upload_mb=0.01)
    app = create_app(settings)
    app.dependency_overrides[get_client] = lambda: fake
    boundary = "xyzboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    def body():
        yield head
        for _ in range(1000):  # 1000 x 8 KiB = 8 MB if nobody stops it
            yield b"\0" * 8192
        yield f"\r\n--{boundary}--\r\n".encode()

    with TestClient(app) as client:
        resp = client.post(
            "/api/predict", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
        )
    assert resp.status_code == 413
    assert resp.json()["error"] == "too_large"
    assert fake.calls == []


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but holds almost no data (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [20_000, 50_000], ids=["over-app-limit", "over-pillow-limit"])
def test_decompression_bomb_is_refused_before_decoding(client: TestClient, fake, side: int) -> None:
    bomb = _png_header_only(side, side)
    assert len(bomb) < 200
    resp = client.post("/api/predict", files=upload(bomb, "bomb.png"))
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_image"
    assert "pixels" in resp.json()["message"]
    page = client.post("/", files=upload(bomb, "bomb.png"))
    assert page.status_code == 400 and "pixels" in page.text
    assert fake.calls == []


def test_api_without_a_file_field_is_a_422_json(client: TestClient) -> None:
    resp = client.post("/api/predict", data={"image": "x"})
    assert resp.status_code == 422
    body = resp.json()
    assert body["error"] == "invalid_request" and "'file'" in body["message"]
    resp = client.post("/api/predict", json={"instances": []})
    assert resp.status_code == 422


# --------------------------------------------------------------------------- endpoint failures


def _app_with_http_client(handler, **settings_kw) -> TestClient:
    settings = WebappSettings(**settings_kw)
    transport = httpx.MockTransport(handler) if handler is not None else None
    client = HttpPredictionClient(settings.endpoint_url, timeout=settings.timeout_s, transport=transport)
    return TestClient(create_app(settings, client=client), raise_server_exceptions=False)


def _assert_502(tc: TestClient, message: str) -> None:
    resp = tc.post("/api/predict", files=upload(sample_bytes()))
    assert resp.status_code == 502, resp.text
    body = resp.json()
    assert body["error"] == "endpoint_error"
    assert message in body["message"]
    assert_no_internals(resp.text)
    page = tc.post("/", data={"sample": "7-sneaker"})
    assert page.status_code == 502
    assert "The model could not answer" in page.text and message in page.text
    assert_no_internals(page.text)
    # the app stays up
    assert tc.get("/healthz").status_code == 200
    assert tc.get("/").status_code == 200


def test_endpoint_down_is_a_502_and_the_app_stays_up() -> None:
    import socket

    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with _app_with_http_client(None, endpoint_url=f"http://127.0.0.1:{port}/predict", timeout_s=2) as tc:
        _assert_502(tc, "cannot be reached")


def test_endpoint_timeout_is_a_502() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with _app_with_http_client(handler, timeout_s=1.5) as tc:
        _assert_502(tc, "did not answer within 1.5 seconds")


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(500, json={"error": "model crashed"}), "returned an error (HTTP 500)"),
        (httpx.Response(400, json={"error": "bad instance"}), "returned an error (HTTP 400)"),
        (httpx.Response(200, text="<html>proxy login</html>"), "does not understand"),
        (httpx.Response(200, json={"predictions": []}), "does not understand"),
        (httpx.Response(200, json={"predictions": [{"label": "Bag", "class_id": 8, "probabilities": [0.5]}]}),
         "does not understand"),
    ],
    ids=["500", "400", "not-json", "no-predictions", "short-probabilities"],
)
def test_endpoint_error_or_nonsense_is_a_502(response: httpx.Response, message: str) -> None:
    with _app_with_http_client(lambda request: response) as tc:
        _assert_502(tc, message)


def test_unexpected_error_is_a_generic_500_without_a_traceback(client: TestClient, fake) -> None:
    fake.error = RuntimeError("secret internal detail at /srv/model.py line 3")
    resp = client.post("/api/predict", files=upload(sample_bytes()))
    assert resp.status_code == 500
    body = resp.json()
    assert body["error"] == "internal_error" and body["request_id"] in body["message"]
    assert "secret" not in resp.text
    page = client.post("/", data={"sample": "7-sneaker"})
    assert page.status_code == 500 and "Something went wrong" in page.text and "secret" not in page.text
    assert client.get("/healthz").status_code == 200


def test_cloud_errors_from_any_client_are_502(client: TestClient, fake) -> None:
    fake.error = CloudError("The prediction endpoint was not found.")
    resp = client.post("/api/predict", files=upload(sample_bytes()))
    assert resp.status_code == 502 and "not found" in resp.json()["message"]


def test_app_is_not_in_debug_mode(app) -> None:
    assert app.debug is False
    assert app.docs_url is None and app.redoc_url is None  # they would load assets from a CDN


# --------------------------------------------------------------------------- health, OpenAPI, logs, headers


def test_health_route(client: TestClient) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json()["status"] == "ok" and resp.json()["backend"] == "http"


def test_openapi_documents_the_predict_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/api/predict"]["post"]
    assert "multipart/form-data" in op["requestBody"]["content"]
    for status in ("200", "400", "413", "422", "502"):
        assert status in op["responses"], status
    schemas = spec["components"]["schemas"]
    assert {"label", "probabilities", "model_version", "model_input_png"} <= set(schemas["PredictResponse"]["properties"])
    assert "/healthz" in spec["paths"]
    assert "/" not in spec["paths"]  # the HTML page is not part of the API


def test_unknown_routes_are_404_page_or_json(client: TestClient) -> None:
    assert client.get("/nowhere").status_code == 404
    resp = client.get("/api/nowhere")
    assert resp.status_code == 404 and resp.json()["error"] == "not_found"
    assert client.get("/static/nothing.css").status_code == 404


def test_security_headers_and_request_id(client: TestClient) -> None:
    resp = client.get("/", headers={"X-Request-ID": "abc-123"})
    assert "default-src 'self'" in resp.headers["content-security-policy"]
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["x-request-id"] == "abc-123"
    generated = client.get("/").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{16}", generated)


def test_one_structured_log_line_per_request(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="vertex_edge.webapp.requests"):
        client.post("/api/predict", files=upload(sample_bytes()), headers={"X-Request-ID": "req-1"})
        client.post("/api/predict", files=upload(b"nope", "x.txt", "text/plain"))
    records = [r for r in caplog.records if r.name == "vertex_edge.webapp.requests"]
    assert len(records) == 2
    ok = json.loads(JsonFormatter().format(records[0]))
    assert ok["request_id"] == "req-1" and ok["method"] == "POST" and ok["path"] == "/api/predict"
    assert ok["status"] == 200 and ok["duration_ms"] >= 0
    assert ok["label"] == "Sneaker" and ok["model_version"] == MODEL_VERSION
    bad = json.loads(JsonFormatter().format(records[1]))
    assert bad["status"] == 400 and bad["error"] == "invalid_image"


def test_lifespan_builds_the_client_the_settings_choose() -> None:
    settings = WebappSettings(endpoint_url="http://prediction.example:9000/v1/predict")
    app = create_app(settings)
    assert app.state.client is None  # nothing is built before start-up
    with TestClient(app):
        built = app.state.client
        assert isinstance(built, HttpPredictionClient)
        assert built.url == "http://prediction.example:9000/v1/predict"
    assert app.state.client is None


# --------------------------------------------------------------------------- the gallery


def test_gallery_has_one_small_sample_per_class() -> None:
    samples = load_samples()
    assert [s.class_id for s in samples.values()] == list(range(10))
    for s in samples.values():
        assert s.path.stat().st_size < 20_000
        image = Image.open(s.path)
        assert image.format == "PNG" and min(image.size) >= 64
        # a product photo: light background, which the shared preprocessing inverts
        assert np.asarray(image.convert("L"))[0, 0] > 200


def test_sample_labels_match_the_dataset_manifest() -> None:
    manifest = yaml.safe_load((REPO / "data" / "fashion-mnist.yaml").read_text())
    samples = load_samples()
    assert {s.class_id: s.label for s in samples.values()} == dict(enumerate(manifest["labels"]))


def test_labels_come_from_the_response_and_an_older_server_still_gets_an_answer() -> None:
    body = {"predictions": [{"label": "Sneaker", "class_id": 7, "probabilities": list(probabilities(7))}]}
    old = parse_response(body)
    assert old.labels[7] == "Sneaker" and old.labels[0] == "class 0"  # no names invented
    body["predictions"][0]["labels"] = ["a", "b", "c", "d", "e", "f", "g", "Sneaker", "i", "j"]
    assert parse_response(body).labels[9] == "j"
