"""The client bundle: real clients built lazily at the edge, errors classified into reasons a
user can act on, and the kubeconfig edge.py writes for kubectl/helm."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from google.api_core import exceptions as gexc
from google.auth import exceptions as aexc

from tests.gcp.fakes import PROJECT, REGION, FakeCloud
from vertex_edge.errors import CloudError, NotProvisionedError
from vertex_edge.gcp.clients import GcpClients
from vertex_edge.gcp.errors import classify, disabled_api, translate
from vertex_edge.gcp.kube import ToolRunner, cluster_endpoint, cluster_runner

CLIENT_NAMES = (
    "service_usage", "storage", "artifact_registry", "container", "secret_manager", "projects", "billing", "endpoints",
)  # fmt: skip


def test_every_real_client_is_built_on_first_use_with_the_given_credentials() -> None:
    from google.auth.credentials import AnonymousCredentials

    credentials = AnonymousCredentials()
    clients = GcpClients(project=PROJECT, region=REGION, credentials=credentials)
    assert clients._built == {}

    built = {name: getattr(clients, name) for name in CLIENT_NAMES}

    assert {name: type(c).__name__ for name, c in built.items()} == {
        "service_usage": "ServiceUsageClient",
        "storage": "Client",
        "artifact_registry": "ArtifactRegistryClient",
        "container": "ClusterManagerClient",
        "secret_manager": "SecretManagerServiceClient",
        "projects": "ProjectsClient",
        "billing": "CloudBillingClient",
        "endpoints": "EndpointServiceClient",
    }
    assert built["endpoints"].api_endpoint == f"{REGION}-aiplatform.googleapis.com"  # Vertex AI is regional
    assert clients.storage is built["storage"]  # built once


def test_overrides_replace_clients_and_missing_credentials_are_a_clear_error() -> None:
    fake = object()
    clients = GcpClients(project=PROJECT, region=REGION, overrides={"storage": fake})
    assert clients.storage is fake
    with pytest.raises(CloudError, match="no credentials"):
        _ = clients.container


def test_connect_without_adc_says_how_to_log_in(monkeypatch: pytest.MonkeyPatch) -> None:
    import google.auth

    def no_adc(**kwargs: Any) -> Any:
        raise aexc.DefaultCredentialsError("Your default credentials were not found. To set up ADC, see ...")

    monkeypatch.setattr(google.auth, "default", no_adc)
    with pytest.raises(CloudError) as err:
        GcpClients.connect(PROJECT, REGION)
    assert err.value.message == "no Application Default Credentials (Your default credentials were not found)"
    assert "gcloud auth application-default login" in (err.value.hint or "")


def test_refresh_uses_a_short_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    class Credentials:
        def refresh(self, request: Any) -> None:
            try:
                request(url="http://127.0.0.1:9/token", method="POST")
            except aexc.TransportError as exc:
                seen["error"] = exc

    import google.auth.transport.requests as transport

    original = transport.Request.__call__

    def spy(self: Any, url: str, method: str = "GET", body: Any = None, headers: Any = None, timeout: Any = None,
            **kwargs: Any) -> Any:  # fmt: skip
        seen["timeout"] = timeout
        return original(self, url, method, body, headers, timeout=timeout, **kwargs)

    monkeypatch.setattr(transport.Request, "__call__", spy)
    GcpClients(project=PROJECT, region=REGION, credentials=Credentials()).refresh(timeout=3.0)
    assert seen["timeout"] == 3.0 and isinstance(seen["error"], aexc.TransportError)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (aexc.TransportError("Failed to resolve 'oauth2.googleapis.com'"), "unreachable"),
        (aexc.RefreshError("invalid_grant: Token has been expired or revoked."), "credentials"),
        (gexc.ServiceUnavailable("DNS resolution failed"), "unreachable"),
        (gexc.DeadlineExceeded("deadline"), "timeout"),
        (gexc.RetryError("retries exhausted", gexc.ServiceUnavailable("x")), "unreachable"),
        (gexc.Unauthenticated("invalid credentials"), "credentials"),
        (gexc.PermissionDenied("Permission 'container.clusters.get' denied"), "permission"),
        (
            gexc.PermissionDenied(
                "Kubernetes Engine API has not been used in project 123 before or it is disabled. "
                "Enable it by visiting https://console.developers.google.com/apis/api/container.googleapis.com"
            ),
            "disabled",
        ),
        (
            gexc.PermissionDenied(
                "Your application is authenticating by using local Application Default Credentials. The "
                "serviceusage.googleapis.com API requires a quota project, which is not set by default."
            ),
            "credentials",
        ),
        (gexc.NotFound("nope"), "not_found"),
        (gexc.InternalServerError("backend"), "api"),
    ],
)
def test_classify(exc: BaseException, kind: str) -> None:
    problem = classify(exc)
    assert problem is not None and problem.kind == kind
    assert problem.blocks_everything == (kind in ("unreachable", "timeout", "credentials"))


def test_classify_leaves_other_errors_alone() -> None:
    assert classify(ValueError("bug")) is None
    assert translate(KeyError("bug"), "x") is None


def test_disabled_api_is_named_from_error_details() -> None:
    exc = gexc.PermissionDenied(
        "SERVICE_DISABLED",
        details=[SimpleNamespace(reason="SERVICE_DISABLED", metadata={"service": "secretmanager.googleapis.com"})],
    )
    assert disabled_api(exc) == "secretmanager.googleapis.com"
    problem = classify(exc)
    assert problem is not None and problem.message == "the secretmanager.googleapis.com API is not enabled"


def test_translate_names_what_failed() -> None:
    err = translate(gexc.PermissionDenied("denied"), "GKE Autopilot cluster")
    assert isinstance(err, CloudError)
    assert err.message == "GKE Autopilot cluster: permission denied (403 denied)"
    assert "docs/gcp.md" in (err.hint or "")


def test_cluster_runner_writes_a_private_kubeconfig_and_removes_it() -> None:
    cloud = FakeCloud()
    cloud.clusters[f"projects/{PROJECT}/locations/{REGION}/clusters/edge-cluster"] = {"status": "RUNNING", "polls": 0}
    clients = GcpClients(
        project=PROJECT, region=REGION, credentials=SimpleNamespace(token="ya29.token", valid=True),
        overrides={"container": cloud.clients().container},
    )  # fmt: skip

    with cluster_runner(clients, f"projects/{PROJECT}/locations/{REGION}/clusters/edge-cluster") as runner:
        assert isinstance(runner, ToolRunner)
        path = Path(runner.kubeconfig)
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
        config = yaml.safe_load(path.read_text())
    assert not path.exists() and not path.parent.exists()
    assert config["clusters"][0]["cluster"] == {"server": "https://203.0.113.10", "certificate-authority-data": "Q0E="}
    assert config["users"][0]["user"] == {"token": "ya29.token"}


def test_cluster_runner_without_a_cluster_says_to_run_setup() -> None:
    cloud = FakeCloud()
    clients = GcpClients(project=PROJECT, region=REGION, overrides={"container": cloud.clients().container})
    with pytest.raises(NotProvisionedError, match="does not exist"):
        with cluster_runner(clients, f"projects/{PROJECT}/locations/{REGION}/clusters/edge-cluster"):
            pass


def test_cluster_endpoint_falls_back_to_the_dns_endpoint() -> None:
    dns = SimpleNamespace(
        endpoint="", master_auth=SimpleNamespace(cluster_ca_certificate=""),
        control_plane_endpoints_config=SimpleNamespace(
            dns_endpoint_config=SimpleNamespace(endpoint="gke-abc.us-central1.gke.goog")
        ),
    )  # fmt: skip
    assert cluster_endpoint(dns) == ("https://gke-abc.us-central1.gke.goog", None)
    with pytest.raises(CloudError):
        cluster_endpoint(SimpleNamespace(name="c", endpoint="", master_auth=None, control_plane_endpoints_config=None))


def test_tool_runner_passes_the_kubeconfig_and_stdin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[tuple[list[str], Any]] = []

    def run(argv: list[str], **kwargs: Any) -> Any:
        seen.append((argv, kwargs.get("input")))
        return SimpleNamespace(returncode=0, stdout=b"", stderr=b"")

    monkeypatch.setattr("vertex_edge.proc.run", run)
    runner = ToolRunner(kubeconfig=tmp_path / "kc")
    runner.kubectl(["apply", "-f", "-"], input=b"{}")
    runner.helm(["list"])
    assert seen == [
        (["kubectl", "--kubeconfig", str(tmp_path / "kc"), "apply", "-f", "-"], b"{}"),
        (["helm", "--kubeconfig", str(tmp_path / "kc"), "list"], None),
    ]
