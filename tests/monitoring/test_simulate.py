"""The traffic simulator's shifts and sender, and the non-clothing set."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from tests.monitoring.helpers import heldout
from vertex_edge.errors import CloudError, UsageError
from vertex_edge.monitoring.nonclothing import KINDS, nonclothing_set
from vertex_edge.monitoring.simulate import SHIFTS, answer_some, capture_enabled, send, shifted

IMAGES, LABELS = heldout(300, seed=4)


@pytest.mark.parametrize("shift", SHIFTS)
def test_every_shift_makes_images_the_model_can_take(shift: str) -> None:
    images, truth = shifted(IMAGES, LABELS, shift, 100, seed=1)
    assert images.shape == (100, 28, 28) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 255
    assert (truth == -1).any() == (shift == "photos")


def test_shifts_do_what_they_say() -> None:
    plain, _ = shifted(IMAGES, LABELS, "none", 50, seed=3)
    inverted, _ = shifted(IMAGES, LABELS, "inverted", 50, seed=3)
    np.testing.assert_array_equal(inverted, 255.0 - plain)
    _, truth = shifted(IMAGES, LABELS, "imbalance", 400, seed=3)
    assert 0.45 <= np.isin(truth, (1, 8)).mean() <= 0.75  # half forced, plus their share of the rest
    half, _ = shifted(IMAGES, LABELS, "inverted", 400, fraction=0.5, seed=3)
    changed = (half.reshape(400, -1).mean(axis=1) > 120).mean()
    assert 0.35 <= changed <= 0.65
    with pytest.raises(UsageError, match="shift"):
        shifted(IMAGES, LABELS, "blur", 10)


def test_the_non_clothing_set_has_every_kind() -> None:
    items = nonclothing_set()
    kinds = {item.kind for item in items}
    assert kinds == set(KINDS)
    assert all(item.array.shape == (28, 28) for item in items)
    assert sum(item.kind == "photo" for item in items) >= 48  # real photos from matplotlib's sample data


def test_send_posts_instances_and_reads_request_ids() -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(len(body["instances"]))
        predictions = [
            {"label": "Bag", "class_id": 8, "probabilities": [0.1] * 10, "request_id": f"r{len(seen)}",
             "ood": {"score": 0.3, "flag": False}} for _ in body["instances"]
        ]  # fmt: skip
        return httpx.Response(200, json={"predictions": predictions, "model_version": "v"})

    images, truth = shifted(IMAGES, LABELS, "none", 10)
    sent = send("http://server/predict", images, truth, batch=4, transport=httpx.MockTransport(handler))
    assert sorted(seen) == [2, 4, 4] and len(sent) == 10
    assert [s.instance for s in sent[:4]] == [0, 1, 2, 3] and all(s.class_id == 8 for s in sent)
    answered: list = []
    assert answer_some(sent, 1.0, answered.append) == 10


def test_send_reports_server_errors() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(400, json={"error": "bad"}))
    with pytest.raises(CloudError, match="answered 400"):
        send("http://server/predict", IMAGES[:2], LABELS[:2], transport=transport)


def test_capture_enabled_asks_the_servers_capture_route() -> None:
    def server(enabled: bool | None):
        def handler(request: httpx.Request) -> httpx.Response:
            assert request.url.path == "/capture"
            return httpx.Response(404) if enabled is None else httpx.Response(200, json={"enabled": enabled})

        return httpx.MockTransport(handler)

    url = "http://server:8080/v1/endpoints/x:predict"
    assert capture_enabled(url, transport=server(True)) is True
    assert capture_enabled(url, transport=server(False)) is False
    assert capture_enabled(url, transport=server(None)) is None  # a server without the route: cannot tell
