"""Every Google Cloud client the gcp target uses, built at the edge in ONE injectable bundle.

:class:`GcpClients` builds each client on first use (``google.cloud.aiplatform_v1`` alone takes
seconds to import) from one set of Application Default Credentials. Tests build the bundle
with fakes: ``GcpClients(project=..., region=..., overrides={"storage": fake, ...})``.

:func:`classify` turns any exception a client raises into a :class:`Problem` that says whether
GCP could not be reached at all, whether an API is not enabled, or whether a permission is
missing - the provisioning steps use it to report "not checked" with a reason instead of a
traceback.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vertex_edge.errors import CloudError

if TYPE_CHECKING:
    from vertex_edge.gcp.kube import KubeRunner

log = logging.getLogger(__name__)

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
CLIENT_NAMES = (
    "service_usage",
    "storage",
    "artifact_registry",
    "container",
    "secret_manager",
    "projects",
    "billing",
    "endpoints",
)
ADC_HINT = (
    "run 'gcloud auth application-default login' (on a workstation) or set GOOGLE_APPLICATION_CREDENTIALS "
    "to a service-account key file (in CI)"
)

KubeFactory = Callable[["GcpClients", str], contextlib.AbstractContextManager["KubeRunner"]]


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
    credentials were revoked or expired): :func:`classify` turns it into a reason."""
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
        from google.cloud import storage

        return storage.Client(project=project, credentials=credentials)
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


def _default_kube(clients: GcpClients, cluster_path: str) -> contextlib.AbstractContextManager[KubeRunner]:
    from vertex_edge.gcp.kube import cluster_runner

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


# --- errors ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """What went wrong with a call, in words a user can act on."""

    kind: str  # "unreachable" | "credentials" | "disabled" | "permission" | "not_found" | "api"
    message: str
    hint: str | None = None

    @property
    def blocks_everything(self) -> bool:
        """No other call can succeed either (offline, or credentials rejected)."""
        return self.kind in ("unreachable", "credentials")


def classify(exc: BaseException) -> Problem | None:
    """A :class:`Problem` for errors raised by Google clients or google-auth; None for anything else."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as aexc

    if isinstance(exc, aexc.RefreshError):
        return Problem(
            "credentials",
            f"Google rejected the Application Default Credentials ({_first_line(exc)})",
            ADC_HINT,
        )
    if isinstance(exc, aexc.TransportError):
        return Problem("unreachable", f"cannot reach Google Cloud ({_first_line(exc)})", "check the network or proxy")
    if isinstance(exc, aexc.DefaultCredentialsError):
        return Problem("credentials", f"no Application Default Credentials ({_first_line(exc)})", ADC_HINT)
    try:
        import requests

        if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
            return Problem("unreachable", f"cannot reach Google Cloud ({type(exc).__name__})", "check the network")
    except ImportError:  # pragma: no cover - requests comes with google-auth
        pass
    if isinstance(exc, gexc.RetryError):
        cause = exc.cause if exc.cause is not None else None
        inner = classify(cause) if cause is not None else None
        return inner or Problem("unreachable", f"cannot reach Google Cloud ({_first_line(exc)})", "check the network")
    if isinstance(exc, (gexc.ServiceUnavailable, gexc.DeadlineExceeded)):
        return Problem("unreachable", f"cannot reach Google Cloud ({_first_line(exc)})", "check the network or retry")
    if isinstance(exc, gexc.Unauthenticated):
        return Problem("credentials", f"Google rejected the credentials ({_first_line(exc)})", ADC_HINT)
    if isinstance(exc, (gexc.PermissionDenied, gexc.Forbidden)):
        api = disabled_api(exc)
        if api:
            return Problem(
                "disabled",
                f"the {api} API is not enabled",
                "setup enables it; if this persists, wait a minute (enabling takes effect gradually)",
            )
        if "quota project" in str(exc).lower():
            return Problem(
                "credentials",
                f"the API needs a quota project ({_first_line(exc)})",
                "run 'gcloud auth application-default set-quota-project <your project id>'",
            )
        return Problem(
            "permission", f"permission denied ({_first_line(exc)})", "see docs/gcp.md for the IAM roles needed"
        )
    if isinstance(exc, gexc.NotFound):
        return Problem("not_found", _first_line(exc))
    if isinstance(exc, gexc.GoogleAPICallError):
        return Problem("api", _first_line(exc))
    return None


def disabled_api(exc: BaseException) -> str | None:
    """The service name when a 403 says an API is not enabled (SERVICE_DISABLED), else None."""
    for detail in getattr(exc, "details", None) or []:
        reason = getattr(detail, "reason", None)
        metadata = getattr(detail, "metadata", None) or {}
        if reason == "SERVICE_DISABLED":
            return str(metadata.get("service") or "required")
    if getattr(exc, "reason", None) == "SERVICE_DISABLED":
        return str((getattr(exc, "metadata", None) or {}).get("service") or "required")
    text = str(exc)
    if "SERVICE_DISABLED" in text or "has not been used in project" in text or "it is disabled" in text:
        import re

        match = re.search(r"([a-z0-9.-]+\.googleapis\.com)", text)
        return match.group(1) if match else "required"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def translate(exc: BaseException, what: str) -> CloudError | None:
    """A :class:`CloudError` naming ``what`` failed, or None when ``exc`` is not a Google error."""
    problem = classify(exc)
    if problem is None:
        return None
    return CloudError(f"{what}: {problem.message}", hint=problem.hint)
