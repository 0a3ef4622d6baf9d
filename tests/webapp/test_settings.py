"""Web app settings: from the environment, validated at start-up, every problem named."""

from __future__ import annotations

import pytest

from vertex_edge.errors import ConfigError
from vertex_edge.webapp.settings import DEFAULT_ENDPOINT_URL, WebappSettings

VERTEX_ENV = {
    "EDGE_WEBAPP_BACKEND": "vertex",
    "EDGE_GCP_PROJECT": "my-project-123",
    "EDGE_GCP_REGION": "europe-west4",
    "EDGE_ENDPOINT_ID": "1234567890",
}


def test_defaults_call_the_local_prediction_server() -> None:
    s = WebappSettings.from_env({})
    assert s.backend == "http"
    assert s.endpoint_url == DEFAULT_ENDPOINT_URL == "http://127.0.0.1:8080/predict"
    assert s.max_upload_bytes == 5 * 1024 * 1024
    assert (s.host, s.port, s.timeout_s) == ("127.0.0.1", 8000, 10.0)


def test_every_setting_comes_from_its_environment_variable() -> None:
    s = WebappSettings.from_env(
        {
            **VERTEX_ENV,
            "EDGE_WEBAPP_TIMEOUT_S": "2.5",
            "EDGE_WEBAPP_MAX_UPLOAD_MB": "1",
            "EDGE_WEBAPP_HOST": "0.0.0.0",
            "EDGE_WEBAPP_PORT": "8080",
            "EDGE_WEBAPP_LOG_LEVEL": "WARNING",
            "EDGE_WEBAPP_LOG_FORMAT": "text",
            "EDGE_WEBAPP_ENDPOINT_URL": "https://predictor.internal/v1/predict",
        }
    )
    assert s.backend == "vertex"
    assert (s.project, s.region, s.endpoint_id) == ("my-project-123", "europe-west4", "1234567890")
    assert (s.timeout_s, s.max_upload_bytes, s.port, s.log_level, s.log_format) == (2.5, 1048576, 8080, "warning", "text")
    assert "Vertex AI endpoint 1234567890 (my-project-123, europe-west4)" == s.describe_endpoint()


def test_overrides_win_and_empty_variables_count_as_unset() -> None:
    s = WebappSettings.from_env({"EDGE_WEBAPP_PORT": "9000", "EDGE_WEBAPP_ENDPOINT_URL": " "}, {"port": 9100})
    assert s.port == 9100 and s.endpoint_url == DEFAULT_ENDPOINT_URL


def test_a_full_endpoint_resource_name_is_accepted() -> None:
    name = "projects/my-project-123/locations/us-central1/endpoints/987"
    assert WebappSettings.from_env({**VERTEX_ENV, "EDGE_ENDPOINT_ID": name}).endpoint_id == name


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"EDGE_WEBAPP_BACKEND": "vertex"}, "backend 'vertex' needs EDGE_GCP_PROJECT, EDGE_GCP_REGION, EDGE_ENDPOINT_ID"),
        ({**VERTEX_ENV, "EDGE_ENDPOINT_ID": "my-endpoint"}, "EDGE_ENDPOINT_ID: expected the endpoint's numeric id"),
        ({**VERTEX_ENV, "EDGE_GCP_PROJECT": "X"}, "EDGE_GCP_PROJECT: String should match pattern"),
        ({"EDGE_WEBAPP_BACKEND": "grpc"}, "EDGE_WEBAPP_BACKEND: Input should be 'http' or 'vertex' (got 'grpc')"),
        ({"EDGE_WEBAPP_ENDPOINT_URL": "localhost:8080"}, "EDGE_WEBAPP_ENDPOINT_URL: expected an http:// or https:// URL"),
        ({"EDGE_WEBAPP_ENDPOINT_URL": "http://u:pw@host/predict"}, "must not carry credentials"),
        ({"EDGE_WEBAPP_TIMEOUT_S": "0"}, "EDGE_WEBAPP_TIMEOUT_S: Input should be greater than 0 (got '0')"),
        ({"EDGE_WEBAPP_MAX_UPLOAD_MB": "lots"}, "EDGE_WEBAPP_MAX_UPLOAD_MB: Input should be a valid number"),
        ({"EDGE_WEBAPP_PORT": "70000"}, "EDGE_WEBAPP_PORT: Input should be less than or equal to 65535"),
        ({"EDGE_WEBAPP_LOG_LEVEL": "loud"}, "EDGE_WEBAPP_LOG_LEVEL"),
    ],
)
def test_invalid_settings_name_the_variable_value_and_expectation(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        WebappSettings.from_env(env)
    assert expected in info.value.message
    assert info.value.message.startswith("web app settings are invalid:")


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        WebappSettings.from_env({"EDGE_WEBAPP_TIMEOUT_S": "-1", "EDGE_WEBAPP_PORT": "0"})
    assert "EDGE_WEBAPP_TIMEOUT_S" in info.value.message and "EDGE_WEBAPP_PORT" in info.value.message


def test_the_credentials_in_a_bad_url_are_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        WebappSettings.from_env({"EDGE_WEBAPP_ENDPOINT_URL": "http://u:hunter2@host/predict"})
    assert "must not carry credentials" in info.value.message
    assert "hunter2" not in info.value.message and "***@host" in info.value.message


def test_reading_the_environment_happens_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_WEBAPP_PORT", "8123")
    assert WebappSettings.from_env().port == 8123
    assert WebappSettings().port == 8000


def test_the_load_limits_and_feedback_come_from_their_variables() -> None:
    s = WebappSettings.from_env({
        "EDGE_WEBAPP_MAX_IMAGE_PIXELS": "1000000", "EDGE_WEBAPP_DECODE_WORKERS": "3", "EDGE_WEBAPP_MAX_PENDING": "8",
        "EDGE_WEBAPP_DEADLINE_S": "12.5", "EDGE_WEBAPP_MAX_RESPONSE_MB": "2", "EDGE_FEEDBACK_URI": "gs://b/feedback",
        "EDGE_WEBAPP_MODEL_INPUT_LOGGED": "true",
    })  # fmt: skip
    assert (s.max_image_pixels, s.decode_workers, s.max_pending, s.deadline_s) == (1_000_000, 3, 8, 12.5)
    assert s.max_response_bytes == 2 * 1024 * 1024
    assert s.feedback_uri == "gs://b/feedback" and s.model_input_logged is True
    defaults = WebappSettings.from_env({})
    assert (defaults.max_image_pixels, defaults.decode_workers, defaults.max_pending) == (8_388_608, 2, 32)
    assert defaults.deadline_s == 25 and defaults.feedback_uri is None and defaults.model_input_logged is False


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"EDGE_WEBAPP_MAX_IMAGE_PIXELS": "100000000"}, "EDGE_WEBAPP_MAX_IMAGE_PIXELS"),
        ({"EDGE_WEBAPP_MAX_PENDING": "0"}, "EDGE_WEBAPP_MAX_PENDING"),
        ({"EDGE_WEBAPP_DEADLINE_S": "never"}, "EDGE_WEBAPP_DEADLINE_S"),
        ({"EDGE_FEEDBACK_URI": "s3://bucket/x"}, "EDGE_FEEDBACK_URI"),
    ],
)
def test_bad_limits_are_refused_at_start_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        WebappSettings.from_env(env)
