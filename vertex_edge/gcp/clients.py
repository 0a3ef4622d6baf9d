"""Every Google Cloud client the gcp target uses, built at the edge in ONE injectable bundle.

:class:`GcpClients` builds each client on first use (``google.cloud.aiplatform_v1`` alone takes
seconds to import) from one set of Application Default Credentials. Tests build the bundle
with fakes: ``GcpClients(project=..., region=..., overrides={"storage": fake, ...})``.

:func:`storage_client` is the one way to build a Cloud Storage client (the prediction server,
the Vertex trainer and the CLI all use it): anonymous against an emulator when
``STORAGE_EMULATOR_HOST`` is set, else on the given or default credentials.

Google SDK modules are imported where a client is built: they take seconds to import, which
``import vertex_edge.cli`` must not pay.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from vertex_edge.errors import CloudError
from vertex_edge.gcp.errors import ADC_HINT
from vertex_edge.gcp.kube import KubeRunner, cluster_runner

log = logging.getLogger(__name__)

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"

KubeFactory = Callable[["GcpClients", str], contextlib.AbstractContextManager[KubeRunner]]


def load_credentials() -> tuple[Any, str | None]:
    """Application Default Credentials and their project, or :class:`CloudError` saying how to get them.

    Never contacts Google: a missing credential is found locally (file, env, metadata server
    probe with google-auth's own short timeout)."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, adc_project = google.auth.default(scopes=list(SCOPES))
    except DefaultCredentialsError as exc:
        first = str(exc).split(". ")[0].rstrip(".")
        log.debug("no ADC: %s", exc)
        raise CloudError(f"no Application Default Credentials ({first})", hint=ADC_HINT) from None
    return credentials, adc_project


def refresh_credentials(credentials: Any, *, timeout: float = 10.0) -> None:
    """Fetch an access token now, with a short timeout: the first network call of a run.

    Raises the google-auth error (TransportError when offline, RefreshError when the
    credentials were revoked or expired): :func:`vertex_edge.gcp.errors.classify` turns it into a reason."""
    from google.auth.transport.requests import Request

    request = Request()

    def timed(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", timeout)
        return request(*args, **kwargs)

    credentials.refresh(timed)


def _build(name: str, credentials: Any, project: str, region: str) -> Any:
    """Construct one real client (imports stay inside, so ``import vertex_edge.cli`` is cheap)."""
    if name == "service_usage":
        from google.cloud import service_usage_v1

        return service_usage_v1.ServiceUsageClient(credentials=credentials)
    if name == "storage":
        return storage_client(project=project, credentials=credentials)
    if name == "artifact_registry":
        from google.cloud import artifactregistry_v1

        return artifactregistry_v1.ArtifactRegistryClient(credentials=credentials)
    if name == "container":
        from google.cloud import container_v1

        return container_v1.ClusterManagerClient(credentials=credentials)
    if name == "secret_manager":
        from google.cloud import secretmanager_v1

        return secretmanager_v1.SecretManagerServiceClient(credentials=credentials)
    if name == "projects":
        from google.cloud import resourcemanager_v3

        return resourcemanager_v3.ProjectsClient(credentials=credentials)
    if name == "billing":
        from google.cloud import billing_v1

        return billing_v1.CloudBillingClient(credentials=credentials)
    if name == "endpoints":
        from google.cloud import aiplatform_v1

        # Vertex AI is regional: its API lives at <region>-aiplatform.googleapis.com
        return aiplatform_v1.EndpointServiceClient(
            credentials=credentials, client_options={"api_endpoint": f"{region}-aiplatform.googleapis.com"}
        )
    raise KeyError(name)


def storage_client(
    *, project: str | None = None, credentials: Any = None, env: Mapping[str, str] | None = None
) -> Any:
    """A ``google.cloud.storage.Client``: anonymous against an emulator (``STORAGE_EMULATOR_HOST``),
    else on ``credentials`` (None: Application Default Credentials, e.g. a Vertex AI job's
    service account)."""
    from google.cloud import storage  # deferred: a heavy import (see the module docstring)

    env = os.environ if env is None else env
    host = env.get(EMULATOR_ENV)
    if host:
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(
            project=project or env.get("GOOGLE_CLOUD_PROJECT") or "emulator",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": host if "://" in host else f"http://{host}"},
        )
    if credentials is None and project is None:
        return storage.Client()
    return storage.Client(project=project, credentials=credentials)


def _default_kube(clients: GcpClients, cluster_path: str) -> contextlib.AbstractContextManager[KubeRunner]:
    return cluster_runner(clients, cluster_path)


@dataclass
class GcpClients:
    """Service Usage, Storage, Artifact Registry, Container (GKE), Secret Manager, Resource
    Manager, Cloud Billing and Vertex AI clients, plus the kubectl/helm runner factory."""

    project: str
    region: str
    credentials: Any = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    kube_factory: KubeFactory = _default_kube
    _built: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def connect(cls, project: str, region: str) -> GcpClients:
        """The real bundle, on Application Default Credentials (:class:`CloudError` if there are none)."""
        credentials, _ = load_credentials()
        return cls(project=project, region=region, credentials=credentials)

    def _get(self, name: str) -> Any:
        if name in self.overrides:
            return self.overrides[name]
        if name not in self._built:
            if self.credentials is None:
                raise CloudError(f"no credentials to build the {name} client", hint=ADC_HINT)
            self._built[name] = _build(name, self.credentials, self.project, self.region)
        return self._built[name]

    @property
    def service_usage(self) -> Any:
        return self._get("service_usage")

    @property
    def storage(self) -> Any:
        return self._get("storage")

    @property
    def artifact_registry(self) -> Any:
        return self._get("artifact_registry")

    @property
    def container(self) -> Any:
        return self._get("container")

    @property
    def secret_manager(self) -> Any:
        return self._get("secret_manager")

    @property
    def projects(self) -> Any:
        return self._get("projects")

    @property
    def billing(self) -> Any:
        return self._get("billing")

    @property
    def endpoints(self) -> Any:
        return self._get("endpoints")

    def refresh(self, *, timeout: float = 10.0) -> None:
        """Fetch a token now (fails fast when Google cannot be reached). No-op for fakes."""
        if self.credentials is not None and hasattr(self.credentials, "refresh"):
            refresh_credentials(self.credentials, timeout=timeout)

    def access_token(self) -> str:
        """A current OAuth access token for the cluster's API server (kubectl/helm)."""
        if self.credentials is None:
            raise CloudError("no credentials to reach the GKE cluster", hint=ADC_HINT)
        if not getattr(self.credentials, "valid", False):
            refresh_credentials(self.credentials)
        return str(self.credentials.token)

    @contextlib.contextmanager
    def kube(self, cluster_path: str) -> Iterator[KubeRunner]:
        """A kubectl/helm runner authenticated to ``cluster_path`` (a temporary kubeconfig)."""
        with self.kube_factory(self, cluster_path) as runner:
            yield runner
