"""Per-request budgets of the prediction server: decoded pixels per b64 image (400 naming it) and
per request (413, checked from the headers before anything is decoded), a deadline (504 with
Retry-After), and the settings that set them."""

from __future__ import annotations

import base64
import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.serving.conftest import client_for, ready
from tests.serving.tiny_model import bar_image
from vertex_edge.errors import ConfigError
from vertex_edge.httpserver import HttpLimits
from vertex_edge.serving import body as body_module
from vertex_edge.serving.settings import ServerSettings


def png(side: int, value: int = 200) -> dict[str, str]:
    image = np.zeros((side, side), np.uint8)
    image[side // 4 : side // 2, side // 4 : 3 * side // 4] = value
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return {"b64": base64.b64encode(buf.getvalue()).decode()}


def test_pixel_budgets_per_image_and_per_request(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[int] = []
    load = body_module.load_image
    monkeypatch.setattr(body_module, "load_image", lambda image: decoded.append(image.size[0]) or load(image))
    with client_for(model_dir, max_image_pixels=300 * 300, max_request_pixels=500 * 500) as client:
        ready(client)
        ok = client.post("/predict", json={"instances": [png(200), png(200), bar_image(1).tolist()]})
        assert ok.status_code == 200 and len(ok.json()["predictions"]) == 3
        assert decoded == [200, 200]
        decoded.clear()
        big = client.post("/predict", json={"instances": [png(100), png(301)]})
        assert big.status_code == 400
        assert big.json()["error"]["message"].startswith("instance 1: image is 301x301 = 90,601 pixels, over the limit")
        many = client.post("/predict", json={"instances": [png(300)] * 3})
        assert many.status_code == 413 and many.json()["error"]["status"] == "PAYLOAD_TOO_LARGE"
        assert "the 3 images of this request already decode to 270,000 pixels; the limit is 250,000 per request" in many.json()["error"]["message"]
        assert decoded == []  # refused from the headers: nothing was decoded
        empty = client.post("/predict", json={"instances": [{"b64": ""}]})
        assert empty.status_code == 400 and '"b64" is empty' in empty.json()["error"]["message"]


def test_images_are_decoded_in_slices_and_every_bad_one_is_listed(model_dir: Path) -> None:
    truncated = {"b64": png(600)["b64"][:300]}
    with client_for(model_dir) as client:
        ready(client)
        r = client.post("/predict", json={"instances": [png(1100), truncated, png(28), truncated]})
    assert r.status_code == 400
    assert [d["instance"] for d in r.json()["error"]["details"]] == [1, 3]
    assert "corrupt or truncated" in r.json()["error"]["message"]


def test_a_request_past_its_deadline_gets_504_with_retry_after(model_dir: Path) -> None:
    class Slow:
        def __init__(self, model) -> None:  # noqa: ANN001
            self.model = model

        def __getattr__(self, name: str):  # noqa: ANN204
            return getattr(self.model, name)

        def predict(self, batch: np.ndarray, *, wide: bool = False) -> np.ndarray:
            time.sleep(0.5)
            return self.model.predict(batch, wide=wide)

    with client_for(model_dir, request_deadline_s=0.2, max_batch=1, batch_wait_ms=0) as client:
        ready(client)
        client.app.state.serving.model = Slow(client.app.state.serving.model)
        first: list[int] = []
        worker = threading.Thread(
            target=lambda: first.append(client.post("/predict", json={"instances": [bar_image(1).tolist()]}).status_code)
        )
        worker.start()
        time.sleep(0.1)
        late = client.post("/predict", json={"instances": [bar_image(2).tolist()]})
        worker.join()
    assert first == [200]
    assert late.status_code == 504 and late.headers["retry-after"] == "1"
    assert late.json()["error"]["status"] == "DEADLINE_EXCEEDED"
    assert "could not be answered within 0.2 s" in late.json()["error"]["message"]


def test_limit_settings_from_the_environment() -> None:
    env = {
        "AIP_STORAGE_URI": "/m",
        "AIP_HEALTH_ROUTE": "/v1/health",
        "EDGE_MAX_IMAGE_PIXELS": "1000",
        "EDGE_MAX_REQUEST_PIXELS": "5000",
        "EDGE_REQUEST_DEADLINE_S": "2.5",
        "EDGE_HTTP_HEADER_TIMEOUT_S": "3",
        "EDGE_HTTP_MAX_REQUESTS": "8",
        "EDGE_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
    }
    s = ServerSettings.from_env(env)
    assert (s.max_image_pixels, s.max_request_pixels, s.request_deadline_s) == (1000, 5000, 2.5)
    assert (s.http.header_timeout_s, s.http.max_requests, s.http.body_timeout_s) == (3.0, 8, 30.0)
    assert s.http.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    assert s.http.exempt_paths == ("/v1/health",)  # health checks are never refused as busy
    default = ServerSettings.from_env({"AIP_STORAGE_URI": "/m"})
    assert default.http == HttpLimits(exempt_paths=("/health",))
    assert default.max_request_pixels == 2 * default.max_image_pixels == 2 * 4096 * 4096


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EDGE_HTTP_MAX_HEADERS": "x"}, "EDGE_HTTP_MAX_HEADERS='x' is not a whole number"),
        ({"EDGE_HTTP_HEADER_TIMEOUT_S": "0"}, "EDGE_HTTP_HEADER_TIMEOUT_S=0.0: expected 0.1..3600"),
        ({"EDGE_TRUSTED_PROXIES": "everyone"}, "entry 'everyone': expected an IP address or network, or '*'"),
        ({"EDGE_REQUEST_DEADLINE_S": "0"}, "request_deadline_s 0.0: expected 0.1..3600"),
        ({"EDGE_MAX_REQUEST_PIXELS": "0"}, "max_request_pixels 0: expected at least 1"),
    ],
)
def test_bad_limits_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        ServerSettings.from_env({"AIP_STORAGE_URI": "/m", **env})
    assert message in info.value.message
