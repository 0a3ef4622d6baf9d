"""helm/webapp's NetworkPolicy and load limits: rendered and linted offline (helm-python-sdk),
validated against the Kubernetes schemas (kubernetes-validate), and the limits the chart sets
are the web app's own defaults."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helm.conftest import (
    REPO,
    by_kind,
    helm_available,  # noqa: F401 - the fixture, shared with tests/helm
    lint_chart,
    render_chart,
    validate_manifests,
)
from vertex_edge.webapp.settings import WebappSettings

CHART = REPO / "helm" / "webapp"
VERTEX = {
    "endpoint": {"backend": "vertex", "id": "8812345678901234567"},
    "gcp": {"project": "my-project-123", "region": "europe-west4"},
    "feedback": {"uri": "gs://my-bucket/monitoring/fashion-mnist/feedback"},
}

pytestmark = pytest.mark.usefixtures("helm_available")


def policy(values: dict[str, Any]) -> dict[str, Any]:
    manifests = render_chart(CHART, values, release="webapp")
    assert lint_chart(CHART, values) == []
    assert validate_manifests(manifests) == []
    (found,) = by_kind(manifests, "NetworkPolicy")
    (deployment,) = by_kind(manifests, "Deployment")
    assert found["spec"]["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    return found["spec"]


def egress_ports(spec: dict[str, Any]) -> list[tuple[int, str, Any]]:
    return [(p["port"], p["protocol"], rule.get("to")) for rule in spec["egress"] for p in rule["ports"]]


def test_the_default_policy_lets_in_only_the_app_port_and_out_only_dns_https_and_the_predictor() -> None:
    spec = policy({})
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]  # from anywhere: the LB
    ports = egress_ports(spec)
    assert (53, "UDP", None) in ports and (53, "TCP", None) in ports
    assert (443, "TCP", None) in ports
    assert (8080, "TCP", [{"podSelector": {}}]) in ports  # endpoint.url's port, pods of this namespace
    assert (80, "TCP", [{"ipBlock": {"cidr": "169.254.169.254/32"}}]) in ports  # Workload Identity
    assert {p for p, _, _ in ports} == {53, 443, 8080, 80, 988}


def test_the_vertex_backend_has_no_in_cluster_egress_and_peers_can_be_narrowed() -> None:
    spec = policy({**VERTEX, "networkPolicy": {"ingressFrom": [{"namespaceSelector": {"matchLabels": {"x": "y"}}}]}})
    assert {p for p, _, _ in egress_ports(spec)} == {53, 443, 80, 988}
    assert spec["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {"x": "y"}}}]


def test_the_prediction_port_follows_the_endpoint_url_or_is_set() -> None:
    ports = egress_ports(policy({"endpoint": {"url": "http://predictor.ml.svc:9000/predict"}}))
    assert (9000, "TCP", [{"podSelector": {}}]) in ports
    ports = egress_ports(policy({"endpoint": {"url": "https://predictor.internal/predict"}}))
    assert (443, "TCP", [{"podSelector": {}}]) in ports
    ports = egress_ports(policy({"networkPolicy": {"predictionPorts": [8080, 8081]}}))
    assert {(8080, "TCP"), (8081, "TCP")} <= {(p, proto) for p, proto, _ in ports}


def test_the_policy_can_be_turned_off() -> None:
    manifests = render_chart(CHART, {"networkPolicy": {"enabled": False}})
    assert by_kind(manifests, "NetworkPolicy") == []


def test_the_chart_sets_the_web_app_limits_and_feedback() -> None:
    (deployment,) = by_kind(render_chart(CHART, VERTEX), "Deployment")
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    settings = WebappSettings.from_env(env)
    defaults = WebappSettings()
    for name in ("max_image_pixels", "decode_workers", "max_pending", "deadline_s", "max_response_mb"):
        assert getattr(settings, name) == getattr(defaults, name), name  # the chart's values are the app's defaults
    assert settings.feedback_uri == "gs://my-bucket/monitoring/fashion-mnist/feedback"
    assert "EDGE_FEEDBACK_URI" not in {e["name"] for e in by_kind(render_chart(CHART, {}), "Deployment")[0]["spec"][
        "template"]["spec"]["containers"][0]["env"]}  # fmt: skip
    assert c["resources"]["limits"] == {"cpu": "2", "memory": "640Mi"}
    (tmp,) = (v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "tmp")
    assert tmp["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Mi"}  # uploads never go to /tmp


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"app": {"maxPending": 0}}, "/app/maxPending"),
        ({"app": {"maxImagePixels": 100_000_000}}, "/app/maxImagePixels"),
        ({"feedback": {"uri": "s3://bucket/x"}}, "/feedback/uri"),
        ({"networkPolicy": {"metadataServer": [{"cidr": "bad", "port": 80}]}}, "/networkPolicy/metadataServer"),
    ],
    ids=["pending", "pixels", "feedback-uri", "metadata-cidr"],
)
def test_bad_limit_values_are_refused_naming_the_value(values: dict[str, Any], expected: str) -> None:
    import helm_python as helm

    with pytest.raises(helm.HelmError) as info:
        render_chart(CHART, values)
    assert expected in str(info.value)
