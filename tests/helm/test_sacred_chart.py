"""helm/sacred: renders and lints offline (helm-python-sdk), every manifest validates against the
Kubernetes schemas (kubernetes-validate), no Service is exposed outside the cluster, the MongoDB
credentials only ever come from existing Secrets (Omniboard's: the read-only user's, never root's),
and MongoDB has a PodDisruptionBudget."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helm.conftest import REPO, by_kind, lint_chart, render_chart, validate_manifests
from vertex_edge.gcp.names import GcpNames

CHART = REPO / "helm" / "sacred"

pytestmark = pytest.mark.usefixtures("helm_available")


def setup_values() -> dict[str, Any]:
    """The values ``edge.py setup --target gcp`` installs the chart with."""
    from vertex_edge.config import EdgeConfig

    return GcpNames.from_config(EdgeConfig(target="gcp", gcp={"project": "demo-project-1"})).helm_values()


CUSTOM = {
    "auth": {"existingSecret": "other-auth", "usernameKey": "user", "passwordKey": "pass",
             "reader": {"existingSecret": "other-reader", "usernameKey": "u", "passwordKey": "p"}},
    "mongodb": {
        "image": {"repository": "mongo", "tag": "7.0.14", "pullPolicy": "Always"},
        "database": "runs",
        "port": 27018,
        "persistence": {"size": "20Gi", "storageClassName": "premium-rwo"},
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
    },
    "omniboard": {
        "image": {"repository": "vivekratnavel/omniboard", "tag": "2.16.1"},
        "port": 9001,
        "replicas": 2,
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "500m", "memory": "1Gi"}},
    },
    "podDisruptionBudget": {"enabled": True, "mongodbMaxUnavailable": 1},
    "networkPolicy": {"enabled": False},
}


def containers(manifests: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(pod spec, container) for every container of every workload."""
    found = []
    for m in manifests:
        if m["kind"] in ("Deployment", "StatefulSet"):
            spec = m["spec"]["template"]["spec"]
            found += [(spec, c) for c in spec["containers"]]
    return found


@pytest.mark.parametrize("values", [setup_values(), CUSTOM], ids=["setup", "custom"])
def test_renders_lints_and_validates(values: dict[str, Any]) -> None:
    manifests = render_chart(CHART, values, release="sacred", namespace="sacred")

    assert lint_chart(CHART, values) == []
    assert validate_manifests(manifests) == []
    expected = ["Service/sacred-mongodb", "Service/sacred-omniboard", "StatefulSet/sacred-mongodb",
                "Deployment/sacred-omniboard", "PodDisruptionBudget/sacred-mongodb"]  # fmt: skip
    if values.get("omniboard", {}).get("replicas", 1) > 1:
        expected.append("PodDisruptionBudget/sacred-omniboard")
    if values.get("networkPolicy", {}).get("enabled", True):
        expected += ["NetworkPolicy/sacred-mongodb", "NetworkPolicy/sacred-omniboard"]
    assert sorted(f"{m['kind']}/{m['metadata']['name']}" for m in manifests) == sorted(expected)


@pytest.mark.parametrize("values", [setup_values(), CUSTOM], ids=["setup", "custom"])
def test_no_service_is_exposed_outside_the_cluster(values: dict[str, Any]) -> None:
    services = by_kind(render_chart(CHART, values, release="sacred"), "Service")

    assert len(services) == 2
    for service in services:
        assert service["spec"]["type"] == "ClusterIP"
        assert service["spec"]["type"] not in ("LoadBalancer", "NodePort")
        assert all("nodePort" not in p for p in service["spec"]["ports"])
        assert "externalIPs" not in service["spec"]
    assert not by_kind(render_chart(CHART, values, release="sacred"), "Ingress")


def test_a_service_type_cannot_be_set_from_values() -> None:
    import helm_python as helm

    with pytest.raises(helm.HelmValuesError):
        render_chart(CHART, {**setup_values(), "service": {"type": "LoadBalancer"}})


def test_the_names_edge_py_uses_match_the_chart() -> None:
    from vertex_edge.config import EdgeConfig

    names = GcpNames.from_config(EdgeConfig(target="gcp", gcp={"project": "demo-project-1"}))
    manifests = render_chart(CHART, names.helm_values(), release=names.release, namespace=names.namespace)
    services = {s["metadata"]["name"]: s["spec"]["ports"][0]["port"] for s in by_kind(manifests, "Service")}

    assert services == {names.mongodb_service: names.mongodb_port, names.omniboard_service: names.omniboard_port}
    (statefulset,) = by_kind(manifests, "StatefulSet")
    env = {e["name"]: e for e in statefulset["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MONGO_INITDB_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": names.k8s_secret, "key": "mongodb-password"
    }  # the keys KubeSecretStep writes
    assert env["MONGO_INITDB_ROOT_USERNAME"]["valueFrom"]["secretKeyRef"]["key"] == "mongodb-username"


def test_credentials_come_only_from_the_existing_secret() -> None:
    manifests = render_chart(CHART, setup_values(), release="sacred")
    (omniboard,) = by_kind(manifests, "Deployment")
    env = {e["name"]: e for e in omniboard["spec"]["template"]["spec"]["containers"][0]["env"]}

    # Omniboard logs in as the read-only user, never as root
    assert env["MONGO_USERNAME"]["valueFrom"]["secretKeyRef"] == {"name": "sacred-mongodb-reader", "key": "mongodb-username"}
    assert env["MONGO_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "sacred-mongodb-reader", "key": "mongodb-password"}
    (custom,) = by_kind(render_chart(CHART, CUSTOM, release="sacred"), "Deployment")
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in custom["spec"]["template"]["spec"]["containers"][0]["env"]
            if "valueFrom" in e}  # fmt: skip
    assert refs == {"other-reader"}
    # Kubernetes expands $(MONGO_PASSWORD) at start: the manifest holds a reference, not a password
    assert env["MONGO_URI"]["value"] == (
        "mongodb://$(MONGO_USERNAME):$(MONGO_PASSWORD)@sacred-mongodb:27017/sacred?authSource=admin"
    )
    assert not by_kind(manifests, "Secret")


def test_without_an_existing_secret_rendering_fails_with_a_clear_message() -> None:
    import helm_python as helm

    with pytest.raises(helm.HelmError, match="existingSecret is required"):
        render_chart(CHART, {})
    with pytest.raises(helm.HelmError, match="auth.reader.existingSecret is required: .* Omniboard's read-only"):
        render_chart(CHART, {"auth": {"existingSecret": "sacred-mongodb-auth"}})


def test_mongodb_keeps_its_data_on_a_persistent_volume() -> None:
    (statefulset,) = by_kind(render_chart(CHART, CUSTOM, release="sacred"), "StatefulSet")

    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert claim["spec"]["storageClassName"] == "premium-rwo"
    assert statefulset["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    mounts = statefulset["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "data", "mountPath": "/data/db"} in mounts


@pytest.mark.parametrize("values", [setup_values(), CUSTOM], ids=["setup", "custom"])
def test_every_container_has_resources_and_a_restricted_security_context(values: dict[str, Any]) -> None:
    for pod, container in containers(render_chart(CHART, values, release="sacred")):
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert container["resources"]["requests"]["cpu"] == container["resources"]["limits"]["cpu"]  # Autopilot
        assert container["readinessProbe"] and container["livenessProbe"]
        assert ":" in container["image"] and not container["image"].endswith(":latest")


def test_network_policy_lets_only_omniboard_and_labelled_clients_reach_mongodb() -> None:
    policies = {p["metadata"]["name"]: p for p in by_kind(render_chart(CHART, setup_values(), release="sacred"),
                                                          "NetworkPolicy")}  # fmt: skip
    mongo = policies["sacred-mongodb"]["spec"]
    sources = [f["podSelector"]["matchLabels"] for f in mongo["ingress"][0]["from"]]
    assert {"app.kubernetes.io/component": "omniboard"}.items() <= sources[0].items()
    assert sources[1] == {"sacred-client": "true"}
    assert policies["sacred-omniboard"]["spec"]["ingress"] == []


def test_mongodb_has_a_disruption_budget() -> None:
    """One replica: voluntary evictions (node upgrades, drains) must not cut off a training run."""
    (budget,) = by_kind(render_chart(CHART, setup_values(), release="sacred"), "PodDisruptionBudget")
    (statefulset,) = by_kind(render_chart(CHART, setup_values(), release="sacred"), "StatefulSet")
    assert budget["spec"]["maxUnavailable"] == 0
    assert budget["spec"]["selector"]["matchLabels"] == statefulset["spec"]["selector"]["matchLabels"]
    budgets = {b["metadata"]["name"]: b["spec"] for b in by_kind(render_chart(CHART, CUSTOM, release="sacred"),
                                                                  "PodDisruptionBudget")}  # fmt: skip
    assert budgets["sacred-mongodb"]["maxUnavailable"] == 1 and budgets["sacred-omniboard"]["maxUnavailable"] == 1
    off = {**setup_values(), "podDisruptionBudget": {"enabled": False}}
    assert not by_kind(render_chart(CHART, off, release="sacred"), "PodDisruptionBudget")
