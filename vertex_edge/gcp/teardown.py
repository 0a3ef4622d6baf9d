"""``edge.py teardown``: delete what ``setup --target gcp`` created, in reverse order.

Vertex AI endpoint (its deployed models first) -> MongoDB volume -> GKE cluster -> MongoDB
password -> Artifact Registry repository -> DVC remote -> bucket. Data (the bucket with the DVC
store and the state, the MongoDB volume with the Sacred runs, the password that opens it) is
deleted only with ``--delete-data``; without it, the MongoDB disk is set to *Retain* so it
outlives the cluster, and the plan says what keeps costing money. APIs stay enabled.

Each item checks first (read-only, like the setup steps) and the state records are removed as
each deletion succeeds, under the state lock.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vertex_edge.errors import CloudError
from vertex_edge.gcp.errors import google_call
from vertex_edge.gcp.kube import not_found, stderr_tail
from vertex_edge.gcp.names import DVC_REMOTE_NAME
from vertex_edge.gcp.steps import KEPT_PREFIX, GcpEnv, Unchecked, enum_name, guarded, state_store
from vertex_edge.state import Resource, State


class Verdict(enum.StrEnum):
    DELETE = "will delete"
    KEEP = "keep"
    ABSENT = "absent"
    UNKNOWN = "not checked"


@dataclass
class Finding:
    verdict: Verdict
    detail: str = ""
    cost: str = ""  # what keeps costing money when kept
    data: Any = None  # what the check found, for run()


class Item:
    """One thing teardown deletes (or keeps)."""

    key: str = ""  # the state's resource key
    title: str = ""
    removes: tuple[str, ...] = ()  # state records that go with it
    cloud: bool = True
    acts_when_kept: bool = False  # keeping it takes an action (see _keep)

    def __init__(self, env: GcpEnv, *, delete_data: bool) -> None:
        self.env = env
        self.names = env.names
        self.delete_data = delete_data

    def check(self) -> Finding:
        if self.cloud and self.env.gate.reason:
            return Finding(Verdict.UNKNOWN, self.env.gate.reason)
        result = guarded(self.env, self.title, self._check)
        return Finding(Verdict.UNKNOWN, result.reason) if isinstance(result, Unchecked) else result

    def run(self, finding: Finding) -> list[Resource]:
        """Delete (verdict DELETE) or secure what is kept (verdict KEEP); return records to add to the state."""
        if finding.verdict is Verdict.DELETE:
            google_call(self.title, lambda: self._delete(finding))
            return []
        if finding.verdict is Verdict.KEEP:
            return google_call(self.title, lambda: self._keep(finding))
        return []

    def _check(self) -> Finding:  # pragma: no cover - every item overrides it
        raise NotImplementedError

    def _delete(self, finding: Finding) -> None:  # pragma: no cover
        raise NotImplementedError

    def _keep(self, finding: Finding) -> list[Resource]:
        return []

    def _keep_or_delete(self, detail: str, cost: str, data: Any = None) -> Finding:
        if self.delete_data:
            return Finding(Verdict.DELETE, detail, data=data)
        return Finding(Verdict.KEEP, f"{detail} (kept; --delete-data deletes it)", cost, data)


class EndpointItem(Item):
    key = "endpoint"
    title = "Vertex AI endpoint"
    removes = ("endpoint",)

    def _check(self) -> Finding:
        from vertex_edge.gcp.steps import EndpointStep

        found = EndpointStep(self.env).find()
        if not found:
            return Finding(Verdict.ABSENT, self.names.endpoint_display_name)
        models = sum(len(e.deployed_models) for e in found)
        detail = self.names.endpoint_display_name
        if models:
            detail += f" ({models} deployed model(s) undeployed first)"
        return Finding(Verdict.DELETE, detail, data=found)

    def _delete(self, finding: Finding) -> None:
        api, env = self.env.gcp.endpoints, self.env
        for endpoint in finding.data:
            ids = [str(m.id) for m in endpoint.deployed_models]
            for i, model_id in enumerate(ids):
                request: dict[str, Any] = {"endpoint": endpoint.name, "deployed_model_id": model_id}
                rest = ids[i + 1 :]
                if rest:  # traffic must go to the models still deployed
                    request["traffic_split"] = {rid: (100 if j == 0 else 0) for j, rid in enumerate(rest)}
                env.notify(f"undeploying model {model_id}")
                api.undeploy_model(request=request, timeout=env.call_timeout).result(timeout=env.operation_timeout)
            env.notify(f"deleting {endpoint.name}")
            api.delete_endpoint(request={"name": endpoint.name}, timeout=env.call_timeout).result(
                timeout=env.operation_timeout
            )


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


def _running_cluster(env: GcpEnv) -> Any | None:
    from vertex_edge.gcp.steps import ClusterStep

    return ClusterStep(env)._get()


class MongoVolumeItem(Item):
    """The PersistentVolume(s) of MongoDB: deleted with the namespace (``--delete-data``), or
    set to Retain so the disk survives the cluster."""

    key = "mongodb_volume"
    title = "MongoDB volume (Sacred runs)"
    acts_when_kept = True

    def _check(self) -> Finding:
        cluster = _running_cluster(self.env)
        if cluster is None:
            return Finding(Verdict.ABSENT, "no cluster")
        status = enum_name(cluster.status)
        if status not in ("RUNNING", "DEGRADED"):
            return Finding(Verdict.UNKNOWN, f"cluster is {status}")
        kube = self.env.kube()
        result = kube.kubectl(["get", "pvc", "--namespace", self.names.namespace, "-o", "json"], check=False)
        if not_found(result):
            return Finding(Verdict.ABSENT, f"no namespace {self.names.namespace}")
        if result.returncode != 0:
            return Finding(Verdict.UNKNOWN, f"kubectl get pvc failed: {stderr_tail(result)}")
        volumes = [
            str(pvc.get("spec", {}).get("volumeName"))
            for pvc in json.loads(result.stdout or b"{}").get("items", [])
            if pvc.get("spec", {}).get("volumeName")
        ]
        if not volumes:
            return Finding(Verdict.ABSENT, f"no volume in namespace {self.names.namespace}")
        disks = [self._disk(kube, pv) for pv in volumes]
        shown = ", ".join(d.rsplit("/", 1)[-1] for d in disks)
        cost = "; ".join(disk_cost(d) for d in disks)
        return self._keep_or_delete(f"disk(s) {shown}", cost, data=list(zip(volumes, disks, strict=True)))

    @staticmethod
    def _disk(kube: Any, pv: str) -> str:
        result = kube.kubectl(["get", "pv", pv, "-o", "json"], check=False)
        if result.returncode != 0:
            return pv
        spec = json.loads(result.stdout or b"{}").get("spec", {})
        handle = (spec.get("csi") or {}).get("volumeHandle") or (spec.get("gcePersistentDisk") or {}).get("pdName")
        return str(handle or pv)

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


class KeptDisksItem(Item):
    """MongoDB disks an earlier teardown kept (recorded in the state): listed with their cost.
    edge.py has no Compute Engine client and never deletes them itself."""

    key = "kept_disks"
    title = "MongoDB disks kept earlier"

    def _check(self) -> Finding:
        state, _ = state_store(self.env.clients, self.names).load()
        disks = [
            r for k, r in (state.resources.items() if state else []) if k.startswith(KEPT_PREFIX) and r.kind == "gce-disk"
        ]
        if not disks:
            return Finding(Verdict.ABSENT, "none")
        names = ", ".join(r.name for r in disks)
        return Finding(Verdict.KEEP, f"{names} (not deleted by edge.py)", "; ".join(disk_cost(r.location) for r in disks))


class ClusterItem(Item):
    key = "cluster"
    title = "GKE cluster"
    removes = ("cluster", "mongodb_k8s_secret", "sacred")

    def _check(self) -> Finding:
        cluster = _running_cluster(self.env)
        if cluster is None:
            return Finding(Verdict.ABSENT, self.names.cluster)
        status = enum_name(cluster.status)
        detail = f"{self.names.cluster} with MongoDB and Omniboard"
        if status == "STOPPING":
            detail = f"{self.names.cluster} (already being deleted)"
        return Finding(Verdict.DELETE, detail, data=status)

    def _delete(self, finding: Finding) -> None:
        from google.api_core import exceptions as gexc

        env = self.env
        env.close()  # the kubeconfig for this cluster is of no use any more
        if finding.data != "STOPPING":
            try:
                env.gcp.container.delete_cluster(request={"name": self.names.cluster_path}, timeout=env.call_timeout)
            except gexc.NotFound:
                return
        started = env.clock()
        while _running_cluster(env) is not None:
            elapsed = env.clock() - started
            if elapsed > env.cluster_timeout:
                raise CloudError(
                    f"GKE cluster {self.names.cluster} is still being deleted after {elapsed / 60:.0f} minutes",
                    hint="run 'python edge.py teardown' again later to check",
                )
            env.notify(f"cluster {self.names.cluster} is being deleted")
            env.sleep(env.poll_interval)


class PasswordItem(Item):
    key = "mongodb_password"
    title = "MongoDB password"
    removes = ("mongodb_password",)

    def _check(self) -> Finding:
        from google.api_core import exceptions as gexc

        try:
            self.env.gcp.secret_manager.get_secret(
                request={"name": self.names.secret_path}, timeout=self.env.call_timeout
            )
        except gexc.NotFound:
            return Finding(Verdict.ABSENT, self.names.secret_id)
        return self._keep_or_delete(
            self.names.secret_id, f"secret {self.names.secret_id}: Secret Manager bills active versions (cents a month)"
        )

    def _delete(self, finding: Finding) -> None:
        from google.api_core import exceptions as gexc

        try:
            self.env.gcp.secret_manager.delete_secret(
                request={"name": self.names.secret_path}, timeout=self.env.call_timeout
            )
        except gexc.NotFound:
            pass


class RepositoryItem(Item):
    key = "artifact_registry"
    title = "Artifact Registry repository"
    removes = ("artifact_registry",)

    def _check(self) -> Finding:
        from google.api_core import exceptions as gexc

        try:
            self.env.gcp.artifact_registry.get_repository(
                request={"name": self.names.repository_path}, timeout=self.env.call_timeout
            )
        except gexc.NotFound:
            return Finding(Verdict.ABSENT, self.names.docker_registry)
        return Finding(Verdict.DELETE, f"{self.names.docker_registry} and every image in it")

    def _delete(self, finding: Finding) -> None:
        env = self.env
        env.notify(f"deleting {self.names.repository_path}")
        operation = env.gcp.artifact_registry.delete_repository(
            request={"name": self.names.repository_path}, timeout=env.call_timeout
        )
        operation.result(timeout=env.operation_timeout)


class DvcRemoteItem(Item):
    """The DVC remote goes with the bucket it points to."""

    key = "dvc_remote"
    title = "DVC default remote"
    removes = ("dvc_remote",)
    cloud = False

    def _check(self) -> Finding:
        dvc, repo = self.env.dvc, self.env.repo
        if not dvc.is_initialised(repo) or dvc.remote_url(repo, DVC_REMOTE_NAME, level="project") is None:
            return Finding(Verdict.ABSENT, DVC_REMOTE_NAME)
        return self._keep_or_delete(f"{DVC_REMOTE_NAME} in .dvc/config", "")

    def _delete(self, finding: Finding) -> None:
        self.env.dvc.dvc(self.env.repo, "remote", "remove", "--project", DVC_REMOTE_NAME)


class BucketItem(Item):
    key = "bucket"
    title = "GCS bucket"
    removes = ("bucket", "state")

    def _check(self) -> Finding:
        bucket = self.env.gcp.storage.lookup_bucket(self.names.bucket, timeout=self.env.call_timeout)
        if bucket is None:
            return Finding(Verdict.ABSENT, f"gs://{self.names.bucket}")
        return self._keep_or_delete(
            f"gs://{self.names.bucket} (DVC data, state; every object version)",
            f"bucket gs://{self.names.bucket}: Cloud Storage bills stored data, old versions included, per GB-month",
        )

    def _delete(self, finding: Finding) -> None:
        env = self.env
        storage = env.gcp.storage
        count = 0
        for blob in storage.list_blobs(self.names.bucket, versions=True, timeout=env.call_timeout):
            blob.delete(timeout=env.call_timeout)
            count += 1
            if count % 100 == 0:
                env.notify(f"deleted {count} objects from gs://{self.names.bucket}")
        storage.bucket(self.names.bucket).delete(timeout=env.call_timeout)


def teardown_items(env: GcpEnv, *, delete_data: bool) -> list[Item]:
    """In reverse order of setup."""
    items: list[Item] = [EndpointItem(env, delete_data=delete_data)]
    if env.names.sacred:
        items += [MongoVolumeItem(env, delete_data=delete_data), KeptDisksItem(env, delete_data=delete_data)]
        items.append(ClusterItem(env, delete_data=delete_data))
        items.append(PasswordItem(env, delete_data=delete_data))
    items += [
        RepositoryItem(env, delete_data=delete_data),
        DvcRemoteItem(env, delete_data=delete_data),
        BucketItem(env, delete_data=delete_data),
    ]
    return items


@dataclass
class Planned:
    item: Item
    finding: Finding


def plan_teardown(items: list[Item]) -> list[Planned]:
    return [Planned(item, item.check()) for item in items]


@dataclass
class StateRecorder:
    """Removes state records as deletions succeed (under the lock, with generation preconditions)."""

    env: GcpEnv
    state: State | None = None
    generation: int = 0
    gone: bool = False
    removed: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = state_store(self.env.clients, self.env.names)

    def load(self) -> None:
        self.state, self.generation = self.store.load()

    def update(self, removes: tuple[str, ...], kept: list[Resource]) -> None:
        if self.gone or self.state is None:
            return
        if "state" in removes:  # the bucket, and the state in it, are gone
            self.gone = True
            return
        changed = False
        for key in removes:
            if self.state.resources.pop(key, None) is not None:
                self.removed.append(key)
                changed = True
        for res in kept:
            self.state.resources[f"{KEPT_PREFIX}{res.kind}_{res.name}"] = res
            changed = True
        if changed:
            self.generation = self.store.save(self.state, self.generation)


def run_teardown(
    planned: list[Planned],
    recorder: StateRecorder,
    *,
    on_start: Callable[[Planned], None] | None = None,
    on_done: Callable[[Planned, float], None] | None = None,
) -> None:
    """Carry out the plan in order; a failure stops at once (a re-run resumes: it re-checks)."""
    env = recorder.env
    for entry in planned:
        verdict = entry.finding.verdict
        if verdict is Verdict.ABSENT:
            recorder.update(entry.item.removes, [])  # a stale record
            continue
        if verdict is Verdict.UNKNOWN or (verdict is Verdict.KEEP and not entry.item.acts_when_kept):
            continue
        if on_start:
            on_start(entry)
        started = env.clock()
        kept = entry.item.run(entry.finding)
        removes = entry.item.removes if entry.finding.verdict is Verdict.DELETE else ()
        recorder.update(removes, kept)
        if on_done:
            on_done(entry, env.clock() - started)
