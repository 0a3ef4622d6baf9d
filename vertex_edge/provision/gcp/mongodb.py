"""MongoDB's passwords and data on the gcp target.

* Three passwords, each in its own Secret Manager secret (the one source of truth for it),
  generated once: the root user's (it initialises MongoDB and creates the others), the Sacred
  writer's and Omniboard's read-only user's (:mod:`.mongodb_users` creates those two users). If
  the root secret is gone but the cluster's Kubernetes Secret still holds the password MongoDB
  was initialised with, that password is put back instead of a new one, so MongoDB keeps
  accepting it (a lost writer or reader password is simply new: root resets the user).
  Teardown deletes the secrets only with ``--delete-data``.
* The Kubernetes Secrets the pods read, copied from Secret Manager through ``kubectl apply -f -``
  (stdin): the root user's (MongoDB) and the reader's (Omniboard); a password is never on a
  command line. The writer's never enters the cluster. They go with the cluster.
* The volume (created by the ``helm/sacred`` release, :mod:`.sacred_release`): teardown deletes
  it with its namespace (``--delete-data``) or sets it to *Retain* so the disk outlives the
  cluster, and lists the disks kept earlier with what they cost.
"""

from __future__ import annotations

import base64
import json

from vertex_edge.errors import CloudError, ExternalToolError
from vertex_edge.gcp.kube import KubeRunner, not_found, stderr_tail
from vertex_edge.gcp.names import READER, ROOT, MongoAccount
from vertex_edge.gcp.object_store import state_store
from vertex_edge.gcp.secret import read_password, secret_request, version_request
from vertex_edge.provision.engine import Action, Check
from vertex_edge.provision.gcp.cluster import RUNNING, cluster_status, get_cluster
from vertex_edge.provision.gcp.env import GcpEnv
from vertex_edge.provision.gcp.resource import Finding, GcpStep, TeardownItem, Verdict
from vertex_edge.provision.gcp.state import kept_records
from vertex_edge.state import Resource

USERNAME_KEY = "mongodb-username"
PASSWORD_KEY = "mongodb-password"  # noqa: S105 - a key name, not a password


def secret_exists(env: GcpEnv, role: str = ROOT) -> bool:
    """Whether the Secret Manager secret for the account's password exists."""
    from google.api_core import exceptions as gexc  # deferred: a heavy import (see vertex_edge.gcp.errors)

    try:
        env.gcp.secret_manager.get_secret(request={"name": env.names.account(role).secret_path}, timeout=env.call_timeout)
    except gexc.NotFound:
        return False
    return True


def read_cluster_secret(env: GcpEnv, name: str | None = None) -> tuple[bool, str]:
    """(whether the Kubernetes Secret ``name`` (default: root's) exists, the password in it; "" when unreadable)."""
    names = env.names
    result = env.kube().kubectl(
        ["get", "secret", name or names.k8s_secret, "--namespace", names.namespace, "-o", "json"], check=False
    )
    if not_found(result):
        return False, ""
    if result.returncode != 0:
        raise ExternalToolError(f"kubectl get secret failed: {stderr_tail(result)}")
    data = json.loads(result.stdout or b"{}").get("data") or {}
    try:
        return True, base64.b64decode(data.get(PASSWORD_KEY, "")).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return True, ""


def cluster_password(env: GcpEnv) -> str | None:
    """The root password the cluster's Secret holds now (None without a running cluster or Secret)."""
    if not env.cluster_ready:
        return None
    exists, password = read_cluster_secret(env)
    return password if exists and password else None


class MongoPasswordStep(GcpStep):
    """One account's password in Secret Manager (``role``: ROOT, WRITER or READER)."""

    api = "secretmanager.googleapis.com"

    def __init__(self, env: GcpEnv, role: str = ROOT) -> None:
        super().__init__(env)
        self.role = role
        self.account: MongoAccount = env.names.account(role)
        self.key = self.account.state_key
        self.title = self.account.title

    def expected(self) -> Resource:
        return Resource(
            kind="secret-manager-secret",
            name=self.account.secret_id,
            location=self.account.secret_path,
            details={"holds": f"MongoDB password of user {self.account.user} ({self.account.purpose})",
                     "replication": self.names.region},  # fmt: skip
        )

    def describe(self) -> str:
        return f"generated, in Secret Manager secret {self.account.secret_path} (replicated in {self.names.region})"

    def _check(self) -> Check:
        if not secret_exists(self.env, self.role):
            return Check(Action.CREATE, self.describe())
        versions = self.env.gcp.secret_manager.list_secret_versions(
            request={"parent": self.account.secret_path, "filter": "state:ENABLED"}, timeout=self.env.call_timeout
        )
        if not any(True for _ in versions):
            return Check(Action.UPDATE, f"{self.account.secret_id} has no enabled version: a new password is generated")
        self.env.passwords_ready.add(self.role)
        return Check(Action.KEEP, self.account.secret_id, self.expected())

    def _apply(self, check: Check) -> Resource:
        from google.api_core import exceptions as gexc  # deferred: a heavy import (see vertex_edge.gcp.errors)

        sm, timeout = self.env.gcp.secret_manager, self.env.call_timeout
        if check.action is Action.CREATE:
            try:
                sm.create_secret(request=secret_request(self.names, self.role), timeout=timeout)
            except gexc.AlreadyExists:
                pass
        # root: MongoDB keeps the password it was initialised with; the others are reset by root
        password = (cluster_password(self.env) if self.role == ROOT else None) or self.env.password_factory()
        sm.add_secret_version(request=version_request(self.names, password, self.role), timeout=timeout)
        self.env.passwords_ready.add(self.role)
        return self.expected()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def secret_manifests(env: GcpEnv, passwords: dict[str, str]) -> bytes:
    """The namespace and the Kubernetes Secrets (root's, the reader's), as one ``kubectl apply -f -`` list."""
    names = env.names
    labels = {"app.kubernetes.io/managed-by": "vertex-edge", "app.kubernetes.io/part-of": "sacred"}
    items: list[dict[str, object]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": names.namespace}}]
    for account in cluster_accounts(env):
        items.append({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": account.k8s_secret, "namespace": names.namespace, "labels": labels},
            "data": {USERNAME_KEY: _b64(account.user), PASSWORD_KEY: _b64(passwords[account.role])},
        })  # fmt: skip
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items}).encode("utf-8")


def cluster_accounts(env: GcpEnv) -> list[MongoAccount]:
    """The accounts a pod reads from a Kubernetes Secret: root (MongoDB) and the reader (Omniboard)."""
    return [env.names.account(role) for role in (ROOT, READER)]


class KubeSecretStep(GcpStep):
    key = "mongodb_k8s_secret"
    title = "Kubernetes Secrets (MongoDB)"

    def expected(self) -> Resource:
        accounts = cluster_accounts(self.env)
        return Resource(
            kind="k8s-secret",
            name=", ".join(str(a.k8s_secret) for a in accounts),
            location=f"{self.names.cluster}/{self.names.namespace}",
            details={"copied_from": self.names.secret_path,
                     "secrets": {str(a.k8s_secret): a.secret_path for a in accounts}},  # fmt: skip
        )

    def describe(self) -> str:
        shown = ", ".join(f"{self.names.namespace}/{a.k8s_secret}" for a in cluster_accounts(self.env))
        return f"{shown} in cluster {self.names.cluster}"

    def pending(self) -> str | None:
        return None if self.env.cluster_ready else "once the cluster runs"

    def _check(self) -> Check:
        missing, stale = [], []
        for account in cluster_accounts(self.env):
            exists, current = read_cluster_secret(self.env, account.k8s_secret)
            where = f"{self.names.namespace}/{account.k8s_secret}"
            if not exists:
                missing.append(where)
            elif account.role not in self.env.passwords_ready:
                stale.append(f"{where}: compared once Secret Manager holds the password")
            elif current != read_password(self.env.gcp, self.names, account.role):
                stale.append(f"{where}: differs from Secret Manager")
        if len(missing) == len(cluster_accounts(self.env)):
            return Check(Action.CREATE, self.describe())
        if missing or stale:
            return Check(Action.UPDATE, "; ".join([*(f"{m}: missing" for m in missing), *stale]))
        return Check(Action.KEEP, self.describe(), self.expected())

    def _apply(self, check: Check) -> Resource:
        passwords = {a.role: read_password(self.env.gcp, self.names, a.role) for a in cluster_accounts(self.env)}
        self.env.kube().kubectl(["apply", "-f", "-"], input=secret_manifests(self.env, passwords))
        return self.expected()


class PasswordItem(TeardownItem):
    """One account's Secret Manager secret (deleted only with ``--delete-data``)."""

    def __init__(self, env: GcpEnv, *, delete_data: bool, role: str = ROOT) -> None:
        super().__init__(env, delete_data=delete_data)
        self.role = role
        self.account = env.names.account(role)
        self.key = self.account.state_key
        self.title = self.account.title
        self.removes = (self.account.state_key,)

    def describe(self) -> str:
        return self.account.secret_id

    def _check(self) -> Finding:
        if not secret_exists(self.env, self.role):
            return Finding(Verdict.ABSENT, self.describe())
        return self._keep_or_delete(
            self.account.secret_id, f"secret {self.account.secret_id}: Secret Manager bills active versions (cents a month)"
        )

    def _delete(self, finding: Finding) -> None:
        from google.api_core import exceptions as gexc  # deferred: a heavy import (see vertex_edge.gcp.errors)

        try:
            self.env.gcp.secret_manager.delete_secret(
                request={"name": self.account.secret_path}, timeout=self.env.call_timeout
            )
        except gexc.NotFound:
            pass


def disk_cost(disk: str) -> str:
    """What a kept disk costs, and the command that deletes it (``disk``: projects/P/zones/Z/disks/D)."""
    parts = disk.split("/")
    name = parts[-1]
    if len(parts) == 6 and parts[2] in ("zones", "regions"):
        where = "--zone" if parts[2] == "zones" else "--region"
        how = f"delete it with 'gcloud compute disks delete {name} {where} {parts[3]} --project {parts[1]}'"
    else:
        how = "delete it in the console (Compute Engine > Disks)"
    return f"disk {name}: billed per GB-month; {how}"


def volume_disk(kube: KubeRunner, pv: str) -> str:
    """The Compute Engine disk behind a PersistentVolume (the PV's name when it cannot be read)."""
    result = kube.kubectl(["get", "pv", pv, "-o", "json"], check=False)
    if result.returncode != 0:
        return pv
    spec = json.loads(result.stdout or b"{}").get("spec", {})
    handle = (spec.get("csi") or {}).get("volumeHandle") or (spec.get("gcePersistentDisk") or {}).get("pdName")
    return str(handle or pv)


class MongoVolumeItem(TeardownItem):
    """The PersistentVolume(s) of MongoDB: deleted with the namespace (``--delete-data``), or
    set to Retain so the disk survives the cluster."""

    key = "mongodb_volume"
    title = "MongoDB volume (Sacred runs)"
    acts_when_kept = True

    def describe(self) -> str:
        return f"the volume(s) in namespace {self.names.namespace} of cluster {self.names.cluster}"

    def _check(self) -> Finding:
        cluster = get_cluster(self.env)
        if cluster is None:
            return Finding(Verdict.ABSENT, "no cluster")
        status = cluster_status(cluster)
        if status not in RUNNING:
            return Finding(Verdict.UNKNOWN, self.describe(), why=f"cluster is {status}")
        kube, namespace = self.env.kube(), self.names.namespace
        result = kube.kubectl(["get", "pvc", "--namespace", namespace, "-o", "json"], check=False)
        if not_found(result):
            return Finding(Verdict.ABSENT, f"no namespace {namespace}")
        if result.returncode != 0:
            return Finding(Verdict.UNKNOWN, self.describe(), why=f"kubectl get pvc failed: {stderr_tail(result)}")
        volumes = [
            str(pvc.get("spec", {}).get("volumeName"))
            for pvc in json.loads(result.stdout or b"{}").get("items", [])
            if pvc.get("spec", {}).get("volumeName")
        ]
        if not volumes:
            return Finding(Verdict.ABSENT, f"no volume in namespace {namespace}")
        disks = [volume_disk(kube, pv) for pv in volumes]
        shown = ", ".join(d.rsplit("/", 1)[-1] for d in disks)
        cost = "; ".join(disk_cost(d) for d in disks)
        return self._keep_or_delete(f"disk(s) {shown}", cost, data=list(zip(volumes, disks, strict=True)))

    def _delete(self, finding: Finding) -> None:
        kube = self.env.kube()
        self.env.notify(f"deleting namespace {self.names.namespace} (MongoDB, Omniboard, volumes)")
        kube.kubectl(["delete", "namespace", self.names.namespace, "--wait=true", "--timeout=10m"])
        for pv, _disk in finding.data:
            result = kube.kubectl(["wait", "--for=delete", f"pv/{pv}", "--timeout=10m"], check=False)
            if result.returncode != 0 and not not_found(result):
                raise CloudError(f"volume {pv} was not deleted: {stderr_tail(result)}")

    def _keep(self, finding: Finding) -> list[Resource]:
        kube = self.env.kube()
        patch = json.dumps({"spec": {"persistentVolumeReclaimPolicy": "Retain"}})
        kept = []
        for pv, disk in finding.data:
            kube.kubectl(["patch", "pv", pv, "--type", "merge", "-p", patch])
            name = disk.rsplit("/", 1)[-1]
            kept.append(Resource(kind="gce-disk", name=name, location=disk, details={"holds": "MongoDB data"}))
        return kept


class KeptDisksItem(TeardownItem):
    """MongoDB disks an earlier teardown kept (recorded in the state): listed with their cost.
    edge.py has no Compute Engine client and never deletes them itself."""

    key = "kept_disks"
    title = "MongoDB disks kept earlier"

    def describe(self) -> str:
        return f"disks recorded in {self.names.state_url}"

    def _check(self) -> Finding:
        state, _ = state_store(self.env.clients, self.names).load()
        disks = [r for r in kept_records(state).values() if r.kind == "gce-disk"]
        if not disks:
            return Finding(Verdict.ABSENT, "none")
        names = ", ".join(r.name for r in disks)
        return Finding(Verdict.KEEP, f"{names} (not deleted by edge.py)", "; ".join(disk_cost(r.location) for r in disks))
