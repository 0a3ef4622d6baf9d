"""helm/webapp: rendered and linted offline (helm-python-sdk) under default and non-default values;
every manifest validated against the Kubernetes schemas (kubernetes-validate)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helm.conftest import REPO, by_kind, lint_chart, render_chart, validate_manifests
from vertex_edge.httpserver import ENV as HTTP_ENV
from vertex_edge.webapp.settings import ENV_VARS, WebappSettings

CHART = REPO / "helm" / "webapp"

pytestmark = pytest.mark.usefixtures("helm_available")

VERTEX = {
    "replicaCount": 3,
    "image": {"repository": "europe-west4-docker.pkg.dev/my-project-123/edge/webapp", "tag": "20261122-3f2a9c1"},
    "endpoint": {"backend": "vertex", "id": "8812345678901234567", "timeoutSeconds": 20},
    "gcp": {"project": "my-project-123", "region": "europe-west4"},
    "serviceAccount": {"gcpServiceAccount": "edge-webapp@my-project-123.iam.gserviceaccount.com"},
    "ingress": {
        "enabled": True,
        "className": "gce",
        "host": "fashion.example.com",
        "annotations": {"kubernetes.io/ingress.global-static-ip-name": "edge-webapp"},
        "tls": [{"secretName": "fashion-tls", "hosts": ["fashion.example.com"]}],
    },
    "app": {"maxUploadMB": 8, "logLevel": "warning"},
    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
}


def container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = by_kind(manifests, "Deployment")
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def env_of(manifests: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(manifests)["env"]}


@pytest.mark.parametrize("values", [{}, VERTEX], ids=["default", "vertex-ingress"])
def test_chart_lints_clean_and_every_manifest_is_valid(values: dict[str, Any]) -> None:
    assert lint_chart(CHART, values) == []
    manifests = render_chart(CHART, values)
    assert manifests
    assert validate_manifests(manifests) == []


def test_default_values_render_a_hardened_deployment_with_health_probes() -> None:
    manifests = render_chart(CHART, {}, release="webapp")
    assert sorted(m["kind"] for m in manifests) == ["Deployment", "NetworkPolicy", "PodDisruptionBudget", "Service", "ServiceAccount"]
    (deployment,) = by_kind(manifests, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    c = container(manifests)
    assert deployment["spec"]["replicas"] == 2
    assert c["image"] == "edge-webapp:0.1.0"  # the chart's appVersion by default
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert set(c["resources"]) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(c["resources"]["limits"])
    # non-root, read-only root filesystem, nothing extra
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    # a small writable /tmp for libraries (uploads are read into memory, never spooled to disk)
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])
    # the local/in-cluster prediction server
    env = env_of(manifests)
    assert env["EDGE_WEBAPP_BACKEND"] == "http"
    assert env["EDGE_WEBAPP_ENDPOINT_URL"].startswith("http://")
    assert "EDGE_GCP_PROJECT" not in env
    (service,) = by_kind(manifests, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    (account,) = by_kind(manifests, "ServiceAccount")
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is False


def test_vertex_values_configure_endpoint_workload_identity_and_ingress() -> None:
    manifests = render_chart(CHART, VERTEX, release="prod")
    env = env_of(manifests)
    assert env["EDGE_WEBAPP_BACKEND"] == "vertex"
    assert (env["EDGE_GCP_PROJECT"], env["EDGE_GCP_REGION"]) == ("my-project-123", "europe-west4")
    assert env["EDGE_ENDPOINT_ID"] == "8812345678901234567"
    assert env["EDGE_WEBAPP_TIMEOUT_S"] == "20" and env["EDGE_WEBAPP_MAX_UPLOAD_MB"] == "8"
    assert "EDGE_WEBAPP_ENDPOINT_URL" not in env
    (deployment,) = by_kind(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert container(manifests)["image"] == "europe-west4-docker.pkg.dev/my-project-123/edge/webapp:20261122-3f2a9c1"
    assert container(manifests)["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
    (account,) = by_kind(manifests, "ServiceAccount")
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == (
        "edge-webapp@my-project-123.iam.gserviceaccount.com"
    )
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    # no key file anywhere: no secret volumes, no GOOGLE_APPLICATION_CREDENTIALS
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in env
    assert not any("secret" in v for v in deployment["spec"]["template"]["spec"]["volumes"])
    (ingress,) = by_kind(manifests, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "gce"
    assert ingress["spec"]["tls"] == [{"secretName": "fashion-tls", "hosts": ["fashion.example.com"]}]
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "fashion.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    (service,) = by_kind(manifests, "Service")
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    assert ingress["metadata"]["annotations"] == {"kubernetes.io/ingress.global-static-ip-name": "edge-webapp"}


@pytest.mark.parametrize("values", [{}, VERTEX], ids=["default", "vertex"])
def test_the_rendered_environment_is_valid_web_app_settings(values: dict[str, Any]) -> None:
    env = env_of(render_chart(CHART, values))
    known = set(ENV_VARS.values()) | set(HTTP_ENV)
    assert set(env) <= known, f"the chart sets variables the app does not read: {set(env) - known}"
    settings = WebappSettings.from_env(env)
    assert settings.host == "0.0.0.0" and settings.port == 8080
    assert settings.http.trusted_proxies == ("35.191.0.0/16", "130.211.0.0/22")  # never "*"
    assert "/healthz" in settings.http.exempt_paths
    assert settings.backend == (values.get("endpoint", {}).get("backend", "http"))


def test_one_replica_has_no_disruption_budget_and_an_existing_service_account_can_be_used() -> None:
    manifests = render_chart(CHART, {"replicaCount": 1, "serviceAccount": {"create": False, "name": "shared-sa"}})
    assert by_kind(manifests, "PodDisruptionBudget") == []
    assert by_kind(manifests, "ServiceAccount") == []
    (deployment,) = by_kind(manifests, "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "shared-sa"
    assert validate_manifests(manifests) == []


def test_an_image_digest_pins_the_image() -> None:
    digest = "sha256:" + "ab" * 32
    manifests = render_chart(CHART, {"image": {"repository": "gcr.io/x/webapp", "digest": digest}})
    assert container(manifests)["image"] == f"gcr.io/x/webapp@{digest}"


def test_the_ingress_without_a_host_or_tls_is_valid() -> None:
    manifests = render_chart(CHART, {"ingress": {"enabled": True}})
    (ingress,) = by_kind(manifests, "Ingress")
    assert "host" not in ingress["spec"]["rules"][0] and "tls" not in ingress["spec"]
    assert validate_manifests(manifests) == []
    assert lint_chart(CHART, {"ingress": {"enabled": True}}) == []


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"endpoint": {"backend": "vertex"}}, "/gcp/project"),
        ({"endpoint": {"backend": "vertex", "id": "1"}, "gcp": {"project": "my-project-123"}}, "/gcp/region"),
        ({"endpoint": {"backend": "grpc"}}, "/endpoint/backend"),
        ({"endpoint": {"url": ""}}, "/endpoint/url"),
        ({"replicaCount": "three"}, "/replicaCount"),
        ({"replicas": 3}, "additional properties 'replicas' not allowed"),
        ({"serviceAccount": {"gcpServiceAccount": "not-an-email"}}, "/serviceAccount/gcpServiceAccount"),
        ({"image": {"repository": "x", "digest": "latest"}}, "/image/digest"),
    ],
    ids=["vertex-no-project", "vertex-no-region", "bad-backend", "http-no-url", "replicas-type", "typo", "bad-gsa", "bad-digest"],
)
def test_bad_values_are_refused_naming_the_value(values: dict[str, Any], expected: str) -> None:
    import helm_python as helm

    with pytest.raises(helm.HelmError) as info:
        render_chart(CHART, values)
    assert expected in str(info.value)
    assert any(expected in problem for problem in lint_chart(CHART, values))


def test_templates_hard_code_no_project_region_or_endpoint() -> None:
    import yaml

    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert defaults["gcp"] == {"project": "", "region": ""} and defaults["endpoint"]["id"] == ""
    for template in (CHART / "templates").iterdir():
        text = template.read_text()
        for needle in ("us-central1", "europe-", ".iam.gserviceaccount.com", "docker.pkg.dev"):
            assert needle not in text, f"{template.name} hard-codes {needle}"
