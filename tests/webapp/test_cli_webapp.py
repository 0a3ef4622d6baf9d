"""``edge.py webapp``: which endpoint it calls, from flags, the environment and edge.yaml."""

from __future__ import annotations

import pytest

from vertex_edge.cli.edge import main
from vertex_edge.cli.webapp import build_settings
from vertex_edge.config import EdgeConfig, GcpConfig
from vertex_edge.errors import ConfigError, UsageError

LOCAL = EdgeConfig()
GCP = EdgeConfig(target="gcp", gcp=GcpConfig(project="my-project-123", region="europe-west4"))


def test_local_target_calls_the_local_prediction_server_by_default() -> None:
    s = build_settings(LOCAL, {}, {})
    assert s.backend == "http" and s.endpoint_url == "http://127.0.0.1:8080/predict"


def test_flags_beat_the_environment() -> None:
    env = {"EDGE_WEBAPP_ENDPOINT_URL": "http://env:1/predict", "EDGE_WEBAPP_PORT": "9001"}
    s = build_settings(LOCAL, {"endpoint_url": "http://flag:2/predict", "port": None}, env)
    assert s.endpoint_url == "http://flag:2/predict" and s.port == 9001


def test_gcp_target_calls_vertex_with_project_and_region_from_edge_yaml() -> None:
    s = build_settings(GCP, {}, {"EDGE_ENDPOINT_ID": "31415"})
    assert s.backend == "vertex"
    assert (s.project, s.region, s.endpoint_id) == ("my-project-123", "europe-west4", "31415")
    s = build_settings(GCP, {"endpoint_id": "27182"}, {"EDGE_GCP_REGION": "us-east1"})
    assert (s.region, s.endpoint_id) == ("us-east1", "27182")


def test_gcp_target_uses_the_endpoint_recorded_in_the_state() -> None:
    recorded = "projects/123456/locations/europe-west4/endpoints/99"
    s = build_settings(GCP, {}, {}, lambda: recorded)
    assert s.endpoint_id == recorded and s.backend == "vertex"

    def not_called() -> str:
        raise AssertionError("the state is not read when the id is given")

    assert build_settings(GCP, {}, {"EDGE_ENDPOINT_ID": "5"}, not_called).endpoint_id == "5"


def test_gcp_target_without_an_endpoint_says_how_to_give_one() -> None:
    for lookup in (None, lambda: None):
        with pytest.raises(UsageError) as info:
            build_settings(GCP, {}, {}, lookup)
        assert "endpoint id" in info.value.message and "EDGE_ENDPOINT_ID" in (info.value.hint or "")


def test_the_backend_can_be_chosen_whatever_the_target() -> None:
    assert build_settings(GCP, {"backend": "http"}, {}).backend == "http"
    assert build_settings(LOCAL, {}, {"EDGE_WEBAPP_BACKEND": "http"}).backend == "http"
    with pytest.raises(UsageError, match="--backend must be one of http, vertex"):
        build_settings(LOCAL, {"backend": "grpc"}, {})
    # vertex on the local target needs the project and region from the environment
    with pytest.raises(ConfigError, match="EDGE_GCP_PROJECT"):
        build_settings(LOCAL, {"backend": "vertex", "endpoint_id": "1"}, {})


def test_bad_settings_exit_2_with_a_message(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--repo", str(tmp_path), "webapp", "--endpoint-url", "not-a-url", "--port", "8001"])
    assert code == 2
    err = capsys.readouterr().err
    assert "EDGE_WEBAPP_ENDPOINT_URL: expected an http:// or https:// URL" in err
    assert "Traceback" not in err


def test_help_names_every_environment_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["webapp", "--help"]) == 0
    out = capsys.readouterr().out
    for var in ("EDGE_WEBAPP_HOST", "EDGE_WEBAPP_PORT", "EDGE_WEBAPP_ENDPOINT_URL", "EDGE_ENDPOINT_ID", "EDGE_WEBAPP_BACKEND"):
        assert var in out
