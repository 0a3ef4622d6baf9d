"""The gcp target's provisioning steps, one class per resource, on the shared engine
(:mod:`vertex_edge.provision.engine`): each checks (get), then creates or updates what is
missing, and reports.

Order: APIs -> bucket -> DVC remote -> Artifact Registry -> GKE Autopilot cluster -> MongoDB
password (Secret Manager) -> Kubernetes Secret -> helm/sacred -> Vertex AI endpoint -> state.

Checks never change anything. A check that cannot reach Google returns ``Action.UNKNOWN`` and
closes the :class:`Gate`, so every later step is reported "not checked" without trying (and
without waiting on timeouts again). A step whose API is not enabled yet, or whose cluster does
not exist yet, is reported "will create" without calling the API.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from vertex_edge import dvc as dvc_module
from vertex_edge.errors import CloudError, EdgeError, ExternalToolError
from vertex_edge.gcp.clients import GcpClients
from vertex_edge.gcp.errors import classify, google_call
from vertex_edge.gcp.kube import KubeRunner, not_found, stderr_tail
from vertex_edge.gcp.names import DVC_REMOTE_NAME, LABELS, REQUIRED_APIS, GcpNames
from vertex_edge.gcp.object_store import state_store
from vertex_edge.gcp.secret import generate_password, read_password, secret_request, version_request
from vertex_edge.provision.engine import Action, Check, Step
from vertex_edge.provision.state_file import StateFileStep
from vertex_edge.state import Resource

log = logging.getLogger(__name__)
T = TypeVar("T")

CHART_DIR = Path(__file__).resolve().parents[2] / "helm" / "sacred"
CALL_TIMEOUT = 30.0  # seconds, per API call
OPERATION_TIMEOUT = 900.0  # seconds, per long-running operation (not the cluster)
CLUSTER_TIMEOUT = 40 * 60.0
POLL_INTERVAL = 15.0
HELM_WAIT = "10m"


def enum_name(value: Any) -> str:
    """The name of a proto enum value (fakes may use plain strings)."""
    return str(getattr(value, "name", value))


@dataclass
class Gate:
    """Closed once Google turned out unreachable (or the credentials unusable): the reason, said once."""

    reason: str | None = None
    hint: str | None = None

    def block(self, reason: str, hint: str | None = None) -> None:
        if self.reason is None:
            self.reason, self.hint = reason, hint


@dataclass
class GcpEnv:
    """What every gcp step shares: names, clients, and what earlier checks found out."""

    names: GcpNames
    clients: GcpClients | None
    repo: Path
    chart_dir: Path = CHART_DIR
    dvc: Any = dvc_module  # the vertex_edge.dvc functions (injectable)
    gate: Gate = field(default_factory=Gate)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    notify: Callable[[str], None] = lambda message: None  # progress text for the spinner
    password_factory: Callable[[], str] = generate_password
    call_timeout: float = CALL_TIMEOUT
    operation_timeout: float = OPERATION_TIMEOUT
    cluster_timeout: float = CLUSTER_TIMEOUT
    poll_interval: float = POLL_INTERVAL
    # found out by the checks, in order
    pending_apis: set[str] = field(default_factory=set)
    bucket_ready: bool = False
    cluster_ready: bool = False
    password_ready: bool = False
    _kube: KubeRunner | None = None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def gcp(self) -> GcpClients:
        if self.clients is None:  # only reachable when the gate is open, i.e. never
            raise CloudError(self.gate.reason or "no Google Cloud clients", hint=self.gate.hint)
        return self.clients

    def kube(self) -> KubeRunner:
        """kubectl/helm for the cluster, opened once per run (a temporary kubeconfig)."""
        if self._kube is None:
            self._kube = self._stack.enter_context(self.gcp.kube(self.names.cluster_path))
        return self._kube

    def close(self) -> None:
        self._kube = None
        self._stack.close()

    def api_pending(self, api: str | None) -> bool:
        return api is not None and api in self.pending_apis


@dataclass(frozen=True)
class Unchecked:
    """A check that could not be made, and why."""

    reason: str


def guarded(env: GcpEnv, title: str, fn: Callable[[], T]) -> T | Unchecked:
    """Run a read-only check; a Google/network/tool error becomes :class:`Unchecked` with a reason.

    Unreachable Google or unusable credentials also close the gate (said once, nothing retried)."""
    try:
        return fn()
    except EdgeError as exc:
        return Unchecked(exc.message)
    except Exception as exc:  # noqa: BLE001 - classified below, re-raised if unknown
        problem = classify(exc)
        if problem is None:
            raise
        log.debug("%s: check failed: %s", title, exc)
        if problem.blocks_everything:
            env.gate.block(problem.message, problem.hint)
            return Unchecked(problem.message)
        return Unchecked(problem.message + (f" ({problem.hint})" if problem.hint else ""))


class GcpStep:
    """Base of every gcp step: guarded checks, translated errors, API dependencies."""

    key: str = ""
    title: str = ""
    api: str | None = None  # the Service Usage id this step's API needs
    cloud: bool = True  # False: a local step (still runs when Google is unreachable)

    def __init__(self, env: GcpEnv) -> None:
        self.env = env
        self.names = env.names

    def expected(self) -> Resource:  # pragma: no cover - every step overrides it
        raise NotImplementedError

    def _check(self) -> Check:  # pragma: no cover
        raise NotImplementedError

    def _apply(self, check: Check) -> Resource:  # pragma: no cover
        raise NotImplementedError

    def pending(self) -> str | None:
        """Why the resource cannot exist yet (so it will be created, without asking), else None."""
        if self.env.api_pending(self.api):
            return f"after enabling {self.api}"
        return None

    def check(self) -> Check:
        if self.cloud and self.env.gate.reason:
            return Check(Action.UNKNOWN, self.env.gate.reason)
        why = self.pending()
        if why:
            return Check(Action.CREATE, f"{self.plan_detail()} ({why})")
        result = guarded(self.env, self.title, self._check)
        return Check(Action.UNKNOWN, result.reason) if isinstance(result, Unchecked) else result

    def apply(self, check: Check) -> Resource:
        return google_call(self.title, lambda: self._apply(check))

    def plan_detail(self) -> str:
        return self.expected().location

    def wait_operation(self, operation: Any, what: str) -> Any:
        """Wait for a google.api_core long-running operation, telling the spinner."""
        self.env.notify(f"waiting for {what}")
        return operation.result(timeout=self.env.operation_timeout)


# --- 2. APIs ------------------------------------------------------------------------------


class ApisStep(GcpStep):
    key = "apis"
    title = "Google Cloud APIs"

    def expected(self) -> Resource:
        return Resource(
            kind="apis", name="services", location=self.names.project_path, details={"enabled": list(REQUIRED_APIS)}
        )

    def _services(self) -> dict[str, str]:
        names = [f"{self.names.project_path}/services/{api}" for api in REQUIRED_APIS]
        response = self.env.gcp.service_usage.batch_get_services(
            request={"parent": self.names.project_path, "names": names}, timeout=self.env.call_timeout
        )
        return {str(s.name).rsplit("/", 1)[-1]: enum_name(s.state) for s in response.services}

    def _check(self) -> Check:
        states = self._services()
        missing = sorted(api for api in REQUIRED_APIS if states.get(api) != "ENABLED")
        self.env.pending_apis = set(missing)
        if missing:
            return Check(Action.CREATE, "enable " + ", ".join(a.removesuffix(".googleapis.com") for a in missing))
        return Check(Action.KEEP, f"{len(REQUIRED_APIS)} APIs enabled", self.expected())

    def _apply(self, check: Check) -> Resource:
        missing = sorted(self.env.pending_apis) or list(REQUIRED_APIS)
        operation = self.env.gcp.service_usage.batch_enable_services(
            request={"parent": self.names.project_path, "service_ids": missing}, timeout=self.env.call_timeout
        )
        self.wait_operation(operation, f"{len(missing)} APIs to be enabled")
        self.env.pending_apis = set()
        return self.expected()


# --- 3. bucket and DVC remote -------------------------------------------------------------


class BucketStep(GcpStep):
    key = "bucket"
    title = "GCS bucket"
    api = "storage.googleapis.com"

    def expected(self) -> Resource:
        return Resource(
            kind="gcs-bucket",
            name=self.names.bucket,
            location=f"gs://{self.names.bucket}",
            details={"region": self.names.region, "versioning": True, "uniform_bucket_level_access": True},
        )

    def plan_detail(self) -> str:
        return f"gs://{self.names.bucket} in {self.names.region}, versioned, uniform access"

    def _lookup(self) -> Any:
        from google.api_core import exceptions as gexc

        try:
            return self.env.gcp.storage.lookup_bucket(self.names.bucket, timeout=self.env.call_timeout)
        except gexc.Forbidden:
            raise CloudError(
                f"bucket gs://{self.names.bucket} exists but you cannot access it (bucket names are global)",
                hint="choose another name: set gcp.bucket in edge.yaml",
            ) from None

    def _check(self) -> Check:
        bucket = self._lookup()
        if bucket is None:
            return Check(Action.CREATE, self.plan_detail())
        self.env.bucket_ready = True
        fixes = self._fixes(bucket)
        if fixes:
            return Check(Action.UPDATE, f"gs://{self.names.bucket}: turn on " + " and ".join(fixes))
        where = str(getattr(bucket, "location", "") or "").lower()
        note = f" (location {where})" if where and where != self.names.region else ""
        return Check(Action.KEEP, f"gs://{self.names.bucket}{note}", self.expected())

    @staticmethod
    def _fixes(bucket: Any) -> list[str]:
        fixes = []
        if not bucket.versioning_enabled:
            fixes.append("object versioning")
        if not bucket.iam_configuration.uniform_bucket_level_access_enabled:
            fixes.append("uniform bucket-level access")
        return fixes

    @staticmethod
    def _configure(bucket: Any) -> None:
        bucket.versioning_enabled = True
        bucket.iam_configuration.uniform_bucket_level_access_enabled = True
        bucket.iam_configuration.public_access_prevention = "enforced"
        bucket.labels = {**(bucket.labels or {}), **LABELS}

    def _apply(self, check: Check) -> Resource:
        from google.api_core import exceptions as gexc

        storage = self.env.gcp.storage
        if check.action is Action.CREATE:
            bucket = storage.bucket(self.names.bucket)
            self._configure(bucket)
            try:
                storage.create_bucket(
                    bucket, project=self.names.project, location=self.names.region, timeout=self.env.call_timeout
                )
            except gexc.Conflict:
                # created meanwhile (another edge.py, or a name taken elsewhere): look again
                existing = self._lookup()
                if existing is None:
                    raise CloudError(
                        f"bucket name {self.names.bucket} is taken", hint="set gcp.bucket in edge.yaml"
                    ) from None
                if self._fixes(existing):
                    self._configure(existing)
                    existing.patch(timeout=self.env.call_timeout)
        else:
            bucket = storage.get_bucket(self.names.bucket, timeout=self.env.call_timeout)
            self._configure(bucket)
            bucket.patch(timeout=self.env.call_timeout)
        self.env.bucket_ready = True
        return self.expected()


class DvcRemoteStep(GcpStep):
    """The DVC default remote in the *project* config (``.dvc/config``, committed), so every
    clone and CI push to and pull from the same bucket. A default set in ``.dvc/config.local``
    (by the local target) would override it, so it is unset."""

    key = "dvc_remote"
    title = "DVC default remote"
    cloud = False
    level = "project"

    def expected(self) -> Resource:
        return Resource(
            kind="dvc-remote", name=DVC_REMOTE_NAME, location=self.names.dvc_url, details={"config": ".dvc/config"}
        )

    def _check(self) -> Check:
        dvc, repo = self.env.dvc, self.env.repo
        target = f"{DVC_REMOTE_NAME} -> {self.names.dvc_url}"
        if not dvc.is_initialised(repo):
            return Check(Action.CREATE, f"dvc init; {target}")
        current = dvc.remote_url(repo, DVC_REMOTE_NAME, level=self.level)
        if current is None:
            return Check(Action.CREATE, target)
        default = dvc.default_remote(repo, level=self.level)
        local_default = dvc.default_remote(repo, level="local")
        if current != self.names.dvc_url or default != DVC_REMOTE_NAME:
            return Check(Action.UPDATE, f"{DVC_REMOTE_NAME}: {current} -> {self.names.dvc_url}")
        if local_default not in (None, DVC_REMOTE_NAME):
            return Check(Action.UPDATE, f"unset the local default remote {local_default!r} (it overrides this one)")
        return Check(Action.KEEP, target, self.expected())

    def _apply(self, check: Check) -> Resource:
        dvc, repo = self.env.dvc, self.env.repo
        if not dvc.is_initialised(repo):
            dvc.init(repo)
        dvc.set_remote(repo, DVC_REMOTE_NAME, self.names.dvc_url, level=self.level, default=True)
        if dvc.default_remote(repo, level="local") not in (None, DVC_REMOTE_NAME):
            dvc.dvc(repo, "remote", "default", "--local", "--unset")
        return self.expected()


# --- 4. Artifact Registry -----------------------------------------------------------------


class ArtifactRepositoryStep(GcpStep):
    key = "artifact_registry"
    title = "Artifact Registry repository"
    api = "artifactregistry.googleapis.com"

    def expected(self) -> Resource:
        return Resource(
            kind="artifact-registry",
            name=self.names.artifact_repository,
            location=self.names.docker_registry,
            details={"format": "DOCKER", "resource": self.names.repository_path},
        )

    def _check(self) -> Check:
        from google.api_core import exceptions as gexc

        try:
            repo = self.env.gcp.artifact_registry.get_repository(
                request={"name": self.names.repository_path}, timeout=self.env.call_timeout
            )
        except gexc.NotFound:
            return Check(Action.CREATE, f"Docker repository {self.names.docker_registry}")
        if enum_name(repo.format_) != "DOCKER":
            return Check(
                Action.UNKNOWN,
                f"{self.names.repository_path} exists but is a {enum_name(repo.format_)} repository, not Docker "
                "(set gcp.artifact_repository to another name)",
            )
        return Check(Action.KEEP, self.names.docker_registry, self.expected())

    def _apply(self, check: Check) -> Resource:
        from google.api_core import exceptions as gexc

        request = {
            "parent": self.names.location_path,
            "repository_id": self.names.artifact_repository,
            "repository": {
                "format_": "DOCKER",
                "description": "vertex-edge images: prediction, training, web app",
                "labels": dict(LABELS),
            },
        }
        try:
            operation = self.env.gcp.artifact_registry.create_repository(
                request=request, timeout=self.env.call_timeout
            )
            self.wait_operation(operation, "the repository")
        except gexc.AlreadyExists:
            pass
        return self.expected()


# --- 5. GKE Autopilot cluster and Sacred --------------------------------------------------


class ClusterStep(GcpStep):
    """A GKE Autopilot cluster. Creation takes minutes: the wait polls the cluster (not the
    operation), so an interrupted run resumes by waiting for the same cluster."""

    key = "cluster"
    title = "GKE Autopilot cluster"
    api = "container.googleapis.com"

    def expected(self) -> Resource:
        return Resource(
            kind="gke-cluster",
            name=self.names.cluster,
            location=self.names.cluster_path,
            details={"autopilot": True, "region": self.names.region},
        )

    def plan_detail(self) -> str:
        return f"{self.names.cluster} in {self.names.region} (takes 5-15 minutes)"

    def _get(self) -> Any | None:
        from google.api_core import exceptions as gexc

        try:
            return self.env.gcp.container.get_cluster(
                request={"name": self.names.cluster_path}, timeout=self.env.call_timeout
            )
        except gexc.NotFound:
            return None

    def _check(self) -> Check:
        cluster = self._get()
        if cluster is None:
            return Check(Action.CREATE, self.plan_detail())
        status = enum_name(cluster.status)
        message = str(getattr(cluster, "status_message", "") or "")
        if status in ("RUNNING", "DEGRADED"):
            self.env.cluster_ready = True
            note = f" (DEGRADED: {message})" if status == "DEGRADED" else ""
            return Check(Action.KEEP, f"{self.names.cluster} running{note}", self.expected())
        if status in ("PROVISIONING", "RECONCILING"):
            return Check(Action.UPDATE, f"{self.names.cluster} is {status}: wait until it runs")
        if status == "STOPPING":
            return Check(Action.UNKNOWN, f"{self.names.cluster} is being deleted: wait until it is gone, then re-run")
        return Check(
            Action.UNKNOWN,
            f"{self.names.cluster} is in state {status}" + (f" ({message})" if message else "")
            + ": delete it with 'python edge.py teardown' and re-run setup",
        )

    def request(self) -> dict[str, Any]:
        return {
            "parent": self.names.location_path,
            "cluster": {
                "name": self.names.cluster,
                "autopilot": {"enabled": True},
                "release_channel": {"channel": "REGULAR"},
                "ip_allocation_policy": {"use_ip_aliases": True},
                "resource_labels": dict(LABELS),
            },
        }

    def _apply(self, check: Check) -> Resource:
        from google.api_core import exceptions as gexc

        if check.action is Action.CREATE:
            try:
                self.env.gcp.container.create_cluster(request=self.request(), timeout=self.env.call_timeout)
            except gexc.AlreadyExists:
                pass
        self._wait_running()
        self.env.cluster_ready = True
        return self.expected()

    def _wait_running(self) -> None:
        env = self.env
        started = env.clock()
        while True:
            cluster = self._get()
            status = enum_name(cluster.status) if cluster is not None else "NOT FOUND"
            if status in ("RUNNING", "DEGRADED"):
                return
            if status in ("ERROR", "STOPPING", "NOT FOUND"):
                message = str(getattr(cluster, "status_message", "") or "") if cluster is not None else ""
                raise CloudError(
                    f"GKE cluster {self.names.cluster} is {status}" + (f": {message}" if message else ""),
                    hint="delete it with 'python edge.py teardown', then run setup again",
                )
            elapsed = env.clock() - started
            if elapsed > env.cluster_timeout:
                raise CloudError(
                    f"GKE cluster {self.names.cluster} is still {status} after {elapsed / 60:.0f} minutes",
                    hint="run 'python edge.py setup --target gcp' again to keep waiting",
                )
            env.notify(f"cluster {self.names.cluster} is {status}")
            env.sleep(env.poll_interval)


class MongoPasswordStep(GcpStep):
    """The MongoDB password in Secret Manager (the one source of truth for it): generated once.

    If the secret is gone but the cluster's Kubernetes Secret still holds the password MongoDB
    was initialised with, that password is put back instead of a new one, so MongoDB keeps
    accepting it."""

    key = "mongodb_password"
    title = "MongoDB password"
    api = "secretmanager.googleapis.com"

    def expected(self) -> Resource:
        return Resource(
            kind="secret-manager-secret",
            name=self.names.secret_id,
            location=self.names.secret_path,
            details={"holds": f"MongoDB password of user {self.names.mongodb_user}", "replication": self.names.region},
        )

    def plan_detail(self) -> str:
        return f"generated, in Secret Manager secret {self.names.secret_id}"

    def _check(self) -> Check:
        from google.api_core import exceptions as gexc

        sm = self.env.gcp.secret_manager
        try:
            sm.get_secret(request={"name": self.names.secret_path}, timeout=self.env.call_timeout)
        except gexc.NotFound:
            return Check(Action.CREATE, self.plan_detail())
        versions = sm.list_secret_versions(
            request={"parent": self.names.secret_path, "filter": "state:ENABLED"}, timeout=self.env.call_timeout
        )
        if not any(True for _ in versions):
            return Check(Action.UPDATE, f"{self.names.secret_id} has no enabled version: a new password is generated")
        self.env.password_ready = True
        return Check(Action.KEEP, self.names.secret_id, self.expected())

    def _apply(self, check: Check) -> Resource:
        from google.api_core import exceptions as gexc

        sm = self.env.gcp.secret_manager
        if check.action is Action.CREATE:
            try:
                sm.create_secret(request=secret_request(self.names), timeout=self.env.call_timeout)
            except gexc.AlreadyExists:
                pass
        password = KubeSecretStep(self.env).current_password() or self.env.password_factory()
        sm.add_secret_version(request=version_request(self.names, password), timeout=self.env.call_timeout)
        self.env.password_ready = True
        return self.expected()


def _manifest_list(items: list[dict[str, Any]]) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items}).encode("utf-8")


class KubeSecretStep(GcpStep):
    """The Kubernetes Secret MongoDB and Omniboard read, copied from Secret Manager through
    ``kubectl apply -f -`` (stdin): the password is never on a command line."""

    key = "mongodb_k8s_secret"
    title = "Kubernetes Secret (MongoDB)"
    username_key = "mongodb-username"
    password_key = "mongodb-password"  # noqa: S105 - a key name, not a password

    def expected(self) -> Resource:
        return Resource(
            kind="k8s-secret",
            name=self.names.k8s_secret,
            location=f"{self.names.cluster}/{self.names.namespace}",
            details={"copied_from": self.names.secret_path},
        )

    def plan_detail(self) -> str:
        return f"{self.names.namespace}/{self.names.k8s_secret}"

    def pending(self) -> str | None:
        if not self.env.cluster_ready:
            return "once the cluster runs"
        return None

    def _read(self) -> tuple[bool, str]:
        """(exists, password in it; "" when unreadable)."""
        result = self.env.kube().kubectl(
            ["get", "secret", self.names.k8s_secret, "--namespace", self.names.namespace, "-o", "json"], check=False
        )
        if not_found(result):
            return False, ""
        if result.returncode != 0:
            raise ExternalToolError(f"kubectl get secret failed: {stderr_tail(result)}")
        data = json.loads(result.stdout or b"{}").get("data") or {}
        try:
            return True, base64.b64decode(data.get(self.password_key, "")).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return True, ""

    def current_password(self) -> str | None:
        """The password the cluster's Secret holds now (None without a running cluster or Secret)."""
        if not self.env.cluster_ready:
            return None
        exists, password = self._read()
        return password if exists and password else None

    def _check(self) -> Check:
        exists, current = self._read()
        if not exists:
            return Check(Action.CREATE, self.plan_detail())
        if not self.env.password_ready:
            return Check(Action.UPDATE, f"{self.plan_detail()}: compared once Secret Manager holds the password")
        if current != read_password(self.env.gcp, self.names):
            return Check(Action.UPDATE, f"{self.plan_detail()}: differs from Secret Manager")
        return Check(Action.KEEP, self.plan_detail(), self.expected())

    def manifests(self, password: str) -> bytes:
        def b64(text: str) -> str:
            return base64.b64encode(text.encode("utf-8")).decode("ascii")

        labels = {"app.kubernetes.io/managed-by": "vertex-edge", "app.kubernetes.io/part-of": "sacred"}
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.names.namespace}}
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": self.names.k8s_secret, "namespace": self.names.namespace, "labels": labels},
            "data": {self.username_key: b64(self.names.mongodb_user), self.password_key: b64(password)},
        }
        return _manifest_list([namespace, secret])

    def _apply(self, check: Check) -> Resource:
        password = read_password(self.env.gcp, self.names)
        self.env.kube().kubectl(["apply", "-f", "-"], input=self.manifests(password))
        return self.expected()


class SacredReleaseStep(GcpStep):
    """``helm/sacred`` (MongoDB StatefulSet + Omniboard, both ClusterIP) via ``helm upgrade --install``."""

    key = "sacred"
    title = "Sacred on GKE (helm)"

    def expected(self) -> Resource:
        n = self.names
        return Resource(
            kind="helm-release",
            name=n.release,
            location=f"{n.cluster}/{n.namespace}",
            details={
                "chart": f"sacred-{self.chart_version()}",
                "namespace": n.namespace,
                "omniboard_service": n.omniboard_service,
                "omniboard_port": n.omniboard_port,
                "mongodb_service": n.mongodb_service,
                "mongodb_port": n.mongodb_port,
                "mongodb_user": n.mongodb_user,
                "mongodb_database": n.mongodb_db,
                "password_secret": n.secret_path,
                "service_type": "ClusterIP",
            },
        )

    def plan_detail(self) -> str:
        return f"release {self.names.release} in namespace {self.names.namespace}"

    def chart_version(self) -> str:
        try:
            meta = yaml.safe_load((self.env.chart_dir / "Chart.yaml").read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ExternalToolError(f"cannot read {self.env.chart_dir / 'Chart.yaml'}: {exc}") from None
        return str(meta.get("version"))

    def pending(self) -> str | None:
        if not self.env.cluster_ready:
            return "once the cluster runs"
        return None

    def _check(self) -> Check:
        kube, n = self.env.kube(), self.names
        listed = kube.helm(
            ["list", "--all", "--namespace", n.namespace, "--filter", f"^{n.release}$", "--output", "json"]
        )
        releases = json.loads(listed.stdout or b"[]") or []
        if not releases:
            return Check(Action.CREATE, self.plan_detail())
        release = releases[0]
        want_chart = f"sacred-{self.chart_version()}"
        if release.get("status") != "deployed":
            return Check(Action.UPDATE, f"{n.release} is {release.get('status')}: upgrade")
        if release.get("chart") != want_chart:
            return Check(Action.UPDATE, f"{n.release}: {release.get('chart')} -> {want_chart}")
        values = kube.helm(["get", "values", n.release, "--namespace", n.namespace, "--output", "json"])
        if (json.loads(values.stdout or b"{}") or {}) != n.helm_values():
            return Check(Action.UPDATE, f"{n.release}: values changed")
        return Check(Action.KEEP, f"{self.plan_detail()} ({want_chart})", self.expected())

    def _apply(self, check: Check) -> Resource:
        n = self.names
        self.env.notify(f"helm upgrade --install {n.release} (waits for MongoDB and Omniboard to be ready)")
        self.env.kube().helm(
            [
                "upgrade", "--install", n.release, str(self.env.chart_dir), "--namespace", n.namespace,
                "--create-namespace", "--wait", "--timeout", HELM_WAIT, "--values", "-",
            ],  # fmt: skip
            input=json.dumps(n.helm_values()).encode("utf-8"),
        )
        return self.expected()


# --- 6. Vertex AI endpoint ----------------------------------------------------------------


class EndpointStep(GcpStep):
    key = "endpoint"
    title = "Vertex AI endpoint"
    api = "aiplatform.googleapis.com"

    def __init__(self, env: GcpEnv) -> None:
        super().__init__(env)
        self.resource_name = ""

    def expected(self) -> Resource:
        return Resource(
            kind="vertex-endpoint",
            name=self.names.endpoint_display_name,
            location=self.resource_name,
            details={"region": self.names.region},
        )

    def plan_detail(self) -> str:
        return f"{self.names.endpoint_display_name} in {self.names.region}"

    def find(self) -> list[Any]:
        pager = self.env.gcp.endpoints.list_endpoints(
            request={
                "parent": self.names.location_path,
                "filter": f'display_name="{self.names.endpoint_display_name}"',
            },
            timeout=self.env.call_timeout,
        )
        return sorted(pager, key=lambda e: str(e.name))

    def _check(self) -> Check:
        found = self.find()
        if not found:
            return Check(Action.CREATE, self.plan_detail())
        self.resource_name = str(found[0].name)
        note = f" ({len(found)} endpoints share this name; using the first)" if len(found) > 1 else ""
        return Check(Action.KEEP, self.resource_name + note, self.expected())

    def _apply(self, check: Check) -> Resource:
        operation = self.env.gcp.endpoints.create_endpoint(
            request={
                "parent": self.names.location_path,
                "endpoint": {
                    "display_name": self.names.endpoint_display_name,
                    "description": "vertex-edge model endpoint",
                    "labels": dict(LABELS),
                },
            },
            timeout=self.env.call_timeout,
        )
        endpoint = self.wait_operation(operation, "the endpoint")
        self.resource_name = str(endpoint.name)
        return self.expected()


# --- 7. state -----------------------------------------------------------------------------


KEPT_PREFIX = "kept_"  # state records of what teardown kept (e.g. the MongoDB disk)


@dataclass
class _Recorded:
    """A state record no step manages (what teardown kept): carried over as it is."""

    key: str
    resource: Resource
    title: str = "kept resource"

    def expected(self) -> Resource:
        return self.resource


class StateStep(GcpStep):
    """The state file (shared logic: :class:`vertex_edge.provision.state_file.StateFileStep`) in the bucket."""

    key = "state"
    title = "state file"
    api = "storage.googleapis.com"

    def __init__(self, env: GcpEnv, steps: list[Step]) -> None:
        super().__init__(env)
        self.inner = StateFileStep(state_store(env.clients, env.names), "gcp", steps)

    def expected(self) -> Resource:
        return self.inner.expected()

    def pending(self) -> str | None:
        if not self.env.bucket_ready:
            return "once the bucket exists"
        return super().pending()

    def _check(self) -> Check:
        state, _ = self.inner.store.load()
        known = {s.key for s in self.inner.steps}
        for key, resource in (state.resources.items() if state else []):
            if key.startswith(KEPT_PREFIX) and key not in known:
                self.inner.steps.append(_Recorded(key, resource))  # type: ignore[arg-type]
        return self.inner.check()

    def _apply(self, check: Check) -> Resource:
        return self.inner.apply(check)


def gcp_steps(env: GcpEnv) -> list[Step]:
    """The gcp target's steps in order; the cluster and Sacred only when tracking goes to them."""
    steps: list[Step] = [ApisStep(env), BucketStep(env), DvcRemoteStep(env), ArtifactRepositoryStep(env)]
    if env.names.sacred:
        steps += [ClusterStep(env), MongoPasswordStep(env), KubeSecretStep(env), SacredReleaseStep(env)]
    steps.append(EndpointStep(env))
    steps.append(StateStep(env, list(steps)))
    return steps


# Steps that must exist before the state lock can be taken (the lock lives in the bucket).
BEFORE_LOCK = ("apis", "bucket")
