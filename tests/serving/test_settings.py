"""Server settings from the AIP_* contract and EDGE_* knobs."""

from __future__ import annotations

import pytest

from vertex_edge.errors import ConfigError
from vertex_edge.serving.settings import MAX_BODY_BYTES, ServerSettings


def test_defaults() -> None:
    s = ServerSettings.from_env({"AIP_STORAGE_URI": "gs://b/m"})
    assert (s.port, s.health_route, s.predict_route, s.storage_uri) == (8080, "/health", "/predict", "gs://b/m")
    assert s.max_body_bytes == MAX_BODY_BYTES == 1_572_864
    assert s.endpoint_file is None
    assert (s.max_batch, s.ort_threads, s.batch_wait_ms) == (32, 0, 1.0)
    assert (s.ort_wide_threads, s.ort_wide_min) == (0, 0)  # every CPU, for full batches


def test_vertex_values() -> None:
    env = {
        "AIP_STORAGE_URI": "/models/x",
        "AIP_HTTP_PORT": "7080",
        "AIP_HEALTH_ROUTE": "/v1/endpoints/123/deployedModels/456",
        "AIP_PREDICT_ROUTE": "/v1/endpoints/123/deployedModels/456:predict",
        "EDGE_MAX_BATCH": "64",
        "EDGE_BATCH_WAIT_MS": "2.5",
    }
    s = ServerSettings.from_env(env)
    assert s.port == 7080 and s.predict_route.endswith(":predict") and s.max_batch == 64 and s.batch_wait_ms == 2.5


def test_overrides_win() -> None:
    s = ServerSettings.from_env({"AIP_HTTP_PORT": "1"}, storage_uri="/m", port=9000)
    assert s.port == 9000 and s.storage_uri == "/m"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "AIP_STORAGE_URI is not set"),
        ({"AIP_STORAGE_URI": "/m", "AIP_HTTP_PORT": "http"}, "AIP_HTTP_PORT='http' is not a whole number"),
        ({"AIP_STORAGE_URI": "/m", "AIP_HTTP_PORT": "70000"}, "expected 1..65535"),
        ({"AIP_STORAGE_URI": "/m", "AIP_PREDICT_ROUTE": "predict"}, "expected a path starting with '/'"),
        ({"AIP_STORAGE_URI": "/m", "AIP_PREDICT_ROUTE": "/a/{b}"}, "without spaces or braces"),
        ({"AIP_STORAGE_URI": "/m", "AIP_PREDICT_ROUTE": "/health"}, "both '/health'"),
        ({"AIP_STORAGE_URI": "/m", "EDGE_MAX_BATCH": "0"}, "max_batch 0: expected at least 1"),
        ({"AIP_STORAGE_URI": "/m", "EDGE_BATCH_WAIT_MS": "x"}, "is not a number"),
        ({"AIP_STORAGE_URI": "/m", "EDGE_ORT_WIDE_THREADS": "-1"}, "ort_wide_threads -1: expected at least 0"),
        ({"AIP_STORAGE_URI": "/m", "EDGE_ORT_WIDE_MIN": "64"}, "ort_wide_min 64: expected at most max_batch (32)"),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        ServerSettings.from_env(env)
    assert message in info.value.message
