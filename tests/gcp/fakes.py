"""In-memory fakes of every Google client the gcp target uses, plus kubectl/helm and DVC.

One :class:`FakeCloud` holds the resources and records every call as ``Call(client, method,
kwargs, mutating)``, so tests assert the exact calls and arguments. Errors are the real
``google.api_core.exceptions`` types, so the code under test sees what the real clients raise.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from google.api_core import exceptions as gexc

from tests.gcp.fake_mongo import FakeMongo
from vertex_edge.gcp.clients import GcpClients
from vertex_edge.gcp.kube import Forward

PROJECT = "demo-project-1"
REGION = "us-central1"


@dataclass
class Call:
    client: str
    method: str
    kwargs: dict[str, Any]
    mutating: bool


class Operation:
    """A google.api_core long-running operation that is already done."""

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error

    def result(self, timeout: float | None = None) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


@dataclass
class FakeCloud:
    project: str = PROJECT
    region: str = REGION
    calls: list[Call] = field(default_factory=list)
    enabled_apis: set[str] = field(default_factory=set)
    buckets: dict[str, FakeBucket] = field(default_factory=dict)
    repositories: dict[str, str] = field(default_factory=dict)  # name -> format
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, list[bytes]] = field(default_factory=dict)
    endpoints: dict[str, SimpleNamespace] = field(default_factory=dict)
    billing_enabled: bool = True
    project_state: str = "ACTIVE"
    # failure injection: "client.method" -> exception raised on the next call
    fail: dict[str, BaseException] = field(default_factory=dict)
    polls_until_running: int = 1
    polls_until_deleted: int = 1
    mongo: FakeMongo = field(default_factory=FakeMongo)  # the cluster's MongoDB

    def __post_init__(self) -> None:
        self.mongo.cloud = self

    def record(self, client: str, method: str, kwargs: dict[str, Any], *, mutating: bool) -> None:
        self.calls.append(Call(client, method, dict(kwargs), mutating))
        err = self.fail.pop(f"{client}.{method}", None)
        if err is not None:
            raise err

    def mutations(self) -> list[Call]:
        return [c for c in self.calls if c.mutating]

    def names(self, *, mutating: bool | None = None) -> list[str]:
        return [f"{c.client}.{c.method}" for c in self.calls if mutating is None or c.mutating == mutating]

    # --- the whole stack, as setup leaves it ---------------------------------------------
    def provision_everything(self, kube: FakeKube, password: str = "existing-password-123") -> None:
        from vertex_edge.gcp.names import REQUIRED_APIS

        self.enabled_apis = set(REQUIRED_APIS)
        bucket = FakeBucket(self, f"{self.project}-edge")
        bucket.versioning_enabled = True
        bucket.iam_configuration.uniform_bucket_level_access_enabled = True
        bucket.location = self.region.upper()
        self.buckets[bucket.name] = bucket
        loc = f"projects/{self.project}/locations/{self.region}"
        self.repositories[f"{loc}/repositories/edge"] = "DOCKER"
        self.clusters[f"{loc}/clusters/edge-cluster"] = {"status": "RUNNING", "polls": 0}
        self.secrets[f"projects/{self.project}/secrets/edge-cluster-mongodb-password"] = [password.encode()]
        for role, user in (("writer", "sacred-writer"), ("reader", "omniboard")):
            self.secrets[f"projects/{self.project}/secrets/edge-cluster-mongodb-{role}-password"] = [f"{role}-pw".encode()]
            roles = [{"role": "readWrite", "db": "sacred"}] if role == "writer" else [{"role": "omniboardReader", "db": "admin"}]
            self.mongo.users[user] = {"pwd": f"{role}-pw", "roles": roles}
        from vertex_edge.provision.gcp.mongodb_users import READER_ROLE, reader_role

        self.mongo.roles[READER_ROLE] = reader_role(SimpleNamespace(names=SimpleNamespace(mongodb_db="sacred")))  # type: ignore[arg-type]
        self.mongo.running, self.mongo.root = True, ("sacred", password)
        name = f"{loc}/endpoints/111"
        self.endpoints[name] = SimpleNamespace(name=name, display_name="fashion-mnist-endpoint", deployed_models=[])
        kube.provision_everything(password)

    def clients(self, kube: FakeKube | None = None) -> GcpClients:
        overrides = {
            "service_usage": FakeServiceUsage(self),
            "storage": FakeStorage(self),
            "artifact_registry": FakeArtifactRegistry(self),
            "container": FakeContainer(self),
            "secret_manager": FakeSecretManager(self),
            "projects": FakeProjects(self),
            "billing": FakeBilling(self),
            "endpoints": FakeEndpoints(self),
        }
        kube = kube or FakeKube(self)

        @contextlib.contextmanager
        def factory(clients: GcpClients, cluster_path: str) -> Iterator[Any]:
            self.record("kube", "open", {"cluster": cluster_path}, mutating=False)
            yield kube

        return GcpClients(project=self.project, region=self.region, overrides=overrides, kube_factory=factory)


# --- Service Usage ----------------------------------------------------------------------


class FakeServiceUsage:
    def __init__(self, cloud: FakeCloud) -> None:
        self.cloud = cloud

    def batch_get_services(self, *, request: dict[str, Any], timeout: float | None = None) -> Any:
        self.cloud.record("service_usage", "batch_get_services", {"request": request}, mutating=False)
        services = [
            SimpleNamespace(name=n, state="ENABLED" if n.rsplit("/", 1)[-1] in self.cloud.enabled_apis else "DISABLED")
            for n in request["names"]
        ]
        return SimpleNamespace(services=services)

    def batch_enable_services(self, *, request: dict[str, Any], timeout: float | None = None) -> Operation:
        self.cloud.record("service_usage", "batch_enable_services", {"request": request}, mutating=True)
        self.cloud.enabled_apis |= set(request["service_ids"])
        return Operation(SimpleNamespace())


# --- Cloud Storage ----------------------------------------------------------------------


class FakeBlob:
    def __init__(self, bucket: FakeBucket, name: str, generation: int | None = None) -> None:
        self.bucket, self.name, self.generation = bucket, name, generation

    @property
    def _cloud(self) -> FakeCloud:
        return self.bucket.cloud

    def _require_bucket(self) -> None:
        if self.bucket.name not in self._cloud.buckets:
            raise gexc.NotFound(f"bucket {self.bucket.name} not found")

    def download_as_bytes(self, if_generation_match: int | None = None) -> bytes:
        self._cloud.record(
            "storage", "download", {"name": self.name, "if_generation_match": if_generation_match}, mutating=False
        )
        self._require_bucket()
        objects = self._cloud.buckets[self.bucket.name].objects
        if self.name not in objects:
            raise gexc.NotFound(f"{self.name} not found")
        data, gen = objects[self.name]
        if if_generation_match is not None and gen != if_generation_match:
            raise gexc.PreconditionFailed("conditionNotMet")
        self.generation = gen
        return data

    def exists(self) -> bool:
        self._cloud.record("storage", "exists", {"name": self.name}, mutating=False)
        return self.bucket.name in self._cloud.buckets and self.name in self._cloud.buckets[self.bucket.name].objects

    def upload_from_string(self, data: bytes, *, content_type: str, if_generation_match: int | None = None) -> None:
        self._cloud.record(
            "storage",
            "upload",
            {"name": self.name, "if_generation_match": if_generation_match, "content_type": content_type},
            mutating=True,
        )
        self._require_bucket()
        bucket = self._cloud.buckets[self.bucket.name]
        current = bucket.objects.get(self.name)
        if if_generation_match is not None:
            have = current[1] if current else 0
            if have != if_generation_match:
                raise gexc.PreconditionFailed("conditionNotMet")
        bucket.counter += 1
        bucket.objects[self.name] = (bytes(data), bucket.counter)
        self.generation = bucket.counter

    def delete(self, if_generation_match: int | None = None, timeout: float | None = None) -> None:
        self._cloud.record(
            "storage", "delete_blob", {"name": self.name, "if_generation_match": if_generation_match}, mutating=True
        )
        self._require_bucket()
        objects = self._cloud.buckets[self.bucket.name].objects
        if self.name not in objects:
            raise gexc.NotFound(self.name)
        if if_generation_match is not None and objects[self.name][1] != if_generation_match:
            raise gexc.PreconditionFailed("conditionNotMet")
        del objects[self.name]


class FakeBucket:
    def __init__(self, cloud: FakeCloud, name: str) -> None:
        self.cloud, self.name = cloud, name
        self.versioning_enabled = False
        self.iam_configuration = SimpleNamespace(
            uniform_bucket_level_access_enabled=False, public_access_prevention="inherited"
        )
        self.labels: dict[str, str] = {}
        self.location = "US"
        self.objects: dict[str, tuple[bytes, int]] = {}
        self.counter = 1000

    def blob(self, name: str) -> FakeBlob:
        return FakeBlob(self, name)

    def get_blob(self, name: str) -> FakeBlob | None:
        self.cloud.record("storage", "get_blob", {"name": name}, mutating=False)
        stored = self.cloud.buckets.get(self.name)
        if stored is None or name not in stored.objects:
            return None
        return FakeBlob(self, name, stored.objects[name][1])

    def patch(self, timeout: float | None = None) -> None:
        self.cloud.record(
            "storage",
            "patch_bucket",
            {"name": self.name, "versioning": self.versioning_enabled,
             "ubla": self.iam_configuration.uniform_bucket_level_access_enabled},
            mutating=True,
        )  # fmt: skip
        stored = self.cloud.buckets[self.name]
        stored.versioning_enabled = self.versioning_enabled
        stored.iam_configuration = self.iam_configuration
        stored.labels = dict(self.labels)

    def delete(self, timeout: float | None = None) -> None:
        self.cloud.record("storage", "delete_bucket", {"name": self.name}, mutating=True)
        if self.cloud.buckets[self.name].objects:
            raise gexc.Conflict("bucket not empty")
        del self.cloud.buckets[self.name]


class FakeStorage:
    def __init__(self, cloud: FakeCloud) -> None:
        self.cloud = cloud

    def bucket(self, name: str) -> FakeBucket:
        """Like the real client: a local handle, no request (its settings are not the stored ones)."""
        return FakeBucket(self.cloud, name)

    def lookup_bucket(self, name: str, timeout: float | None = None) -> FakeBucket | None:
        self.cloud.record("storage", "lookup_bucket", {"name": name}, mutating=False)
        return self.cloud.buckets.get(name)

    def get_bucket(self, name: str, timeout: float | None = None) -> FakeBucket:
        self.cloud.record("storage", "get_bucket", {"name": name}, mutating=False)
        if name not in self.cloud.buckets:
            raise gexc.NotFound(name)
        return self.cloud.buckets[name]

    def create_bucket(self, bucket: FakeBucket, *, project: str, location: str, timeout: float | None = None) -> Any:
        self.cloud.record(
            "storage",
            "create_bucket",
            {
                "name": bucket.name, "project": project, "location": location,
                "versioning": bucket.versioning_enabled,
                "ubla": bucket.iam_configuration.uniform_bucket_level_access_enabled,
                "public_access_prevention": bucket.iam_configuration.public_access_prevention,
                "labels": dict(bucket.labels),
            },
            mutating=True,
        )  # fmt: skip
        if bucket.name in self.cloud.buckets:
            raise gexc.Conflict("exists")
        bucket.location = location.upper()
        self.cloud.buckets[bucket.name] = bucket
        return bucket

    def list_blobs(self, name: str, *, versions: bool = False, timeout: float | None = None) -> list[FakeBlob]:
        self.cloud.record("storage", "list_blobs", {"name": name, "versions": versions}, mutating=False)
        bucket = self.cloud.buckets[name]
        return [FakeBlob(bucket, key, gen) for key, (_, gen) in bucket.objects.items()]


# --- Artifact Registry, GKE, Secret Manager, Resource Manager, Billing, Vertex AI --------


class FakeArtifactRegistry:
    def __init__(self, cloud: FakeCloud) -> None:
        self.cloud = cloud

    def get_repository(self, *, request: dict[str, Any], timeout: float | None = None) -> Any:
        self.cloud.record("artifact_registry", "get_repository", {"request": request}, mutating=False)
        if request["name"] not in self.cloud.repositories:
            raise gexc.NotFound(request["name"])
        return SimpleNamespace(name=request["name"], format_=self.cloud.repositories[request["name"]])

    def create_repository(self, *, request: dict[str, Any], timeout: float | None = None) -> Operation:
        self.cloud.record("artifact_registry", "create_repository", {"request": request}, mutating=True)
        name = f"{request['parent']}/repositories/{request['repository_id']}"
        self.cloud.repositories[name] = request["repository"]["format_"]
        return Operation(SimpleNamespace(name=name))

    def delete_repository(self, *, request: dict[str, Any], timeout: float | None = None) -> Operation:
        self.cloud.record("artifact_registry", "delete_repository", {"request": request}, mutating=True)
        self.cloud.repositories.pop(request["name"], None)
        return Operation(None)


class FakeContainer:
    def __init__(self, cloud: FakeCloud) -> None:
        self.cloud = cloud

    def get_cluster(self, *, request: dict[str, Any], timeout: float | None = None) -> Any:
        self.cloud.record("container", "get_cluster", {"request": request}, mutating=False)
        cluster = self.cloud.clusters.get(request["name"])
        if cluster is None:
            raise gexc.NotFound(request["name"])
        cluster["polls"] += 1
        if cluster["status"] == "PROVISIONING" and cluster["polls"] > self.cloud.polls_until_running:
            cluster["status"] = "RUNNING"
        if cluster["status"] == "STOPPING" and cluster["polls"] > self.cloud.polls_until_deleted:
            del self.cloud.clusters[request["name"]]
            raise gexc.NotFound(request["name"])
        return SimpleNamespace(
            name=request["name"].rsplit("/", 1)[-1],
            status=cluster["status"],
            status_message="",
            endpoint="203.0.113.10",
            master_auth=SimpleNamespace(cluster_ca_certificate="Q0E="),
            autopilot=SimpleNamespace(enabled=True),
        )

    def create_cluster(self, *, request: dict[str, Any], timeout: float | None = None) -> Any:
        self.cloud.record("container", "create_cluster", {"request": request}, mutating=True)
        name = f"{request['parent']}/clusters/{request['cluster']['name']}"
        if name in self.cloud.clusters:
            raise gexc.AlreadyExists(name)
        self.cloud.clusters[name] = {"status": "PROVISIONING", "polls": 0}
        return SimpleNamespace(name="operation-1", status="RUNNING")

    def delete_cluster(self, *, request: dict[str, Any], timeout: float | None = None) -> Any:
        self.cloud.record("container", "delete_cluster", {"request": request}, mutating=True)
        cluster = self.cloud.clusters.get(request["name"])
        if cluster is None:
            raise gexc.NotFound(request["name"])
        cluster.update(status="STOPPING", polls=0)
        return SimpleNamespace(name="operation-2")


class FakeSecretManager:
    def __init__(self, cloud: FakeCloud) -> None:
        self.cloud = cloud

    def get_secret(self, *, request: dict[str, Any], timeout: float | None = None) -> Any:
        self.cloud.record("secret_manager", "get_secret", {"request": request}, mutating=False)
        if request["name"] not in self.cloud.secrets:
            raise gexc.NotFound(request["name"])
        return SimpleNamespace(name=request["name"])

    def list_secret_versions(self, *, request: dict[str, Any], timeout: float | None = None) -> list[Any]:
        self.cloud.record("secret_manager", "list_secret_versions", {"request": request}, mutating=False)
        versions = self.cloud.secrets.get(request["parent"], [])
        return [SimpleNamespace(name=f"{request['parent']}/versions/{i + 1}") for i in range(len(versions))]

    def create_secret(self, *, request: dict[str, Any], timeout: float | None = None) -> Any:
        self.cloud.record("secret_manager", "create_secret", {"request": request}, mutating=True)
        name = f"{request['parent']}/secrets/{request['secret_id']}"
        if name in self.cloud.secrets:
            raise gexc.AlreadyExists(name)
        self.cloud.secrets[name] = []
        return SimpleNamespace(name=name)

    def add_secret_version(self, *, request: dict[str, Any], timeout: float | None = None) -> Any:
        self.cloud.record("secret_manager", "add_secret_version", {"request": request}, mutating=True)
        self.cloud.secrets[request["parent"]].append(request["payload"]["data"])
        return SimpleNamespace(name=f"{request['parent']}/versions/{len(self.cloud.secrets[request['parent']])}")

    def access_secret_version(self, *, request: dict[str, Any], timeout: float | None = None) -> Any:
        self.cloud.record("secret_manager", "access_secret_version", {"request": request}, mutating=False)
        secret = request["name"].rsplit("/versions/", 1)[0]
        versions = self.cloud.secrets.get(secret)
        if not versions:
            raise gexc.NotFound(request["name"])
        return SimpleNamespace(payload=SimpleNamespace(data=versions[-1]))

    def delete_secret(self, *, request: dict[str, Any], timeout: float | None = None) -> None:
        self.cloud.record("secret_manager", "delete_secret", {"request": request}, mutating=True)
        if self.cloud.secrets.pop(request["name"], None) is None:
            raise gexc.NotFound(request["name"])


class FakeProjects:
    def __init__(self, cloud: FakeCloud) -> None:
        self.cloud = cloud

    def get_project(self, *, request: dict[str, Any], timeout: float | None = None) -> Any:
        self.cloud.record("projects", "get_project", {"request": request}, mutating=False)
        if request["name"] != f"projects/{self.cloud.project}":
            raise gexc.PermissionDenied("caller does not have permission")
        return SimpleNamespace(name="projects/123", display_name="Demo", state=self.cloud.project_state)


class FakeBilling:
    def __init__(self, cloud: FakeCloud) -> None:
        self.cloud = cloud

    def get_project_billing_info(self, *, request: dict[str, Any], timeout: float | None = None) -> Any:
        self.cloud.record("billing", "get_project_billing_info", {"request": request}, mutating=False)
        return SimpleNamespace(
            billing_enabled=self.cloud.billing_enabled, billing_account_name="billingAccounts/0000-1111"
        )


class FakeEndpoints:
    def __init__(self, cloud: FakeCloud) -> None:
        self.cloud = cloud

    def list_endpoints(self, *, request: dict[str, Any], timeout: float | None = None) -> list[Any]:
        self.cloud.record("endpoints", "list_endpoints", {"request": request}, mutating=False)
        wanted = request["filter"].split('"')[1]
        return [e for e in self.cloud.endpoints.values() if e.display_name == wanted]

    def create_endpoint(self, *, request: dict[str, Any], timeout: float | None = None) -> Operation:
        self.cloud.record("endpoints", "create_endpoint", {"request": request}, mutating=True)
        name = f"{request['parent']}/endpoints/{900 + len(self.cloud.endpoints)}"
        endpoint = SimpleNamespace(name=name, display_name=request["endpoint"]["display_name"], deployed_models=[])
        self.cloud.endpoints[name] = endpoint
        return Operation(endpoint)

    def get_endpoint(self, *, name: str, timeout: float | None = None) -> Any:
        self.cloud.record("endpoints", "get_endpoint", {"name": name}, mutating=False)
        if name not in self.cloud.endpoints:
            raise gexc.NotFound(f"endpoint {name} not found")
        return self.cloud.endpoints[name]

    def update_endpoint(self, *, endpoint: Any, update_mask: Any, timeout: float | None = None) -> Any:
        """Only the request-response logging config, as deploy sets it."""
        self.cloud.record("endpoints", "update_endpoint", {"endpoint": endpoint, "paths": list(update_mask.paths)},
                          mutating=True)  # fmt: skip
        current = self.cloud.endpoints.get(endpoint.name)
        if current is None:
            raise gexc.NotFound(f"endpoint {endpoint.name} not found")
        for path in update_mask.paths:
            setattr(current, path, getattr(endpoint, path))
        return current

    def undeploy_model(self, *, request: dict[str, Any], timeout: float | None = None) -> Operation:
        self.cloud.record("endpoints", "undeploy_model", {"request": request}, mutating=True)
        endpoint = self.cloud.endpoints[request["endpoint"]]
        endpoint.deployed_models = [m for m in endpoint.deployed_models if m.id != request["deployed_model_id"]]
        return Operation(None)

    def delete_endpoint(self, *, request: dict[str, Any], timeout: float | None = None) -> Operation:
        self.cloud.record("endpoints", "delete_endpoint", {"request": request}, mutating=True)
        if self.cloud.endpoints[request["name"]].deployed_models:
            return Operation(error=gexc.FailedPrecondition("endpoint has deployed models"))
        del self.cloud.endpoints[request["name"]]
        return Operation(None)


# --- kubectl / helm ---------------------------------------------------------------------

MUTATING_KUBECTL = {"apply", "delete", "patch", "create", "replace"}
MUTATING_HELM = {"upgrade", "install", "uninstall", "rollback"}


class FakeKube:
    """A :class:`~vertex_edge.gcp.kube.KubeRunner` with an in-memory cluster."""

    def __init__(self, cloud: FakeCloud) -> None:
        self.cloud = cloud
        self.argv: list[list[str]] = []
        self.stdin: list[bytes] = []
        self.namespaces: set[str] = set()
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.releases: dict[tuple[str, str], dict[str, Any]] = {}
        self.pvcs: dict[str, list[str]] = {}  # namespace -> PV names
        self.pvs: dict[str, dict[str, Any]] = {}
        self.forwards: list[tuple[str, str, int]] = []
        self.rollouts: list[list[str]] = []

    def provision_everything(self, password: str) -> None:
        self.namespaces.add("sacred")
        self.secrets[("sacred", "sacred-mongodb-auth")] = {
            "mongodb-username": base64.b64encode(b"sacred").decode(),
            "mongodb-password": base64.b64encode(password.encode()).decode(),
        }
        self.secrets[("sacred", "sacred-mongodb-reader")] = {
            "mongodb-username": base64.b64encode(b"omniboard").decode(),
            "mongodb-password": base64.b64encode(b"reader-pw").decode(),
        }
        self.releases[("sacred", "sacred")] = {
            "status": "deployed",
            "chart": "sacred-0.2.0",
            "values": {"auth": {"existingSecret": "sacred-mongodb-auth", "reader": {"existingSecret": "sacred-mongodb-reader"}},
                       "mongodb": {"database": "sacred"}},
        }  # fmt: skip
        self.pvcs["sacred"] = ["pvc-0001"]
        self.pvs["pvc-0001"] = {
            "spec": {"csi": {"volumeHandle": "projects/demo-project-1/zones/us-central1-a/disks/pvc-0001"}}
        }

    def _result(self, argv: list[str], rc: int = 0, out: Any = b"", err: bytes = b"") -> Any:
        if not isinstance(out, bytes):
            out = json.dumps(out).encode()
        return subprocess.CompletedProcess(argv, rc, out, err)

    def kubectl(self, args: Sequence[str], *, input: bytes | None = None, check: bool = True) -> Any:
        args = list(args)
        self.argv.append(["kubectl", *args])
        self.stdin.append(input or b"")
        mutating = args[0] in MUTATING_KUBECTL or args[:2] == ["rollout", "restart"]
        self.cloud.record("kubectl", args[0], {"argv": args}, mutating=mutating)
        verb = args[0]
        ns = args[args.index("--namespace") + 1] if "--namespace" in args else None
        if verb == "get" and args[1] == "secret":
            data = self.secrets.get((ns, args[2]))
            if data is None:
                err = f'Error from server (NotFound): secrets "{args[2]}" not found'.encode()
                return self._result(args, 1, err=err)
            return self._result(args, out={"kind": "Secret", "data": data})
        if verb == "get" and args[1] == "service":
            release = self.releases.get((ns, "sacred"))
            if release is None:
                return self._result(args, 1, err=b"Error from server (NotFound): services not found")
            return self._result(args, out=f"service/{args[2]}".encode())
        if verb == "get" and args[1] == "pvc":
            if ns not in self.namespaces:
                return self._result(args, 1, err=b'Error from server (NotFound): namespaces "x" not found')
            items = [{"spec": {"volumeName": pv}} for pv in self.pvcs.get(ns, [])]
            return self._result(args, out={"items": items})
        if verb == "get" and args[1] == "pv":
            pv = self.pvs.get(args[2])
            return self._result(args, out=pv) if pv else self._result(args, 1, err=b"NotFound")
        if verb == "apply":
            for item in json.loads(input or b"{}")["items"]:
                if item["kind"] == "Namespace":
                    self.namespaces.add(item["metadata"]["name"])
                elif item["kind"] == "Secret":
                    meta = item["metadata"]
                    self.secrets[(meta["namespace"], meta["name"])] = dict(item["data"])
            return self._result(args)
        if verb == "delete" and args[1] == "namespace":
            self.namespaces.discard(args[2])
            for pv in self.pvcs.pop(args[2], []):
                self.pvs.pop(pv, None)
            self.releases = {k: v for k, v in self.releases.items() if k[0] != args[2]}
            self.cloud.mongo.running, self.cloud.mongo.root = False, None
            self.cloud.mongo.users.clear()
            self.cloud.mongo.roles.clear()
            return self._result(args)
        if verb == "rollout":
            self.rollouts.append(args[1:3])
            return self._result(args)
        if verb == "wait":
            return self._result(args, 1, err=b"Error from server (NotFound): persistentvolumes not found")
        if verb == "patch":
            self.pvs[args[2]]["spec"]["persistentVolumeReclaimPolicy"] = "Retain"
            return self._result(args)
        raise AssertionError(f"unexpected kubectl {args}")

    def helm(self, args: Sequence[str], *, input: bytes | None = None, check: bool = True) -> Any:
        args = list(args)
        self.argv.append(["helm", *args])
        self.stdin.append(input or b"")
        self.cloud.record("helm", args[0], {"argv": args}, mutating=args[0] in MUTATING_HELM)
        ns = args[args.index("--namespace") + 1] if "--namespace" in args else None
        if args[0] == "list":
            name = args[args.index("--filter") + 1].strip("^$")
            release = self.releases.get((ns, name))
            listed = [] if release is None else [{"name": name, "status": release["status"], "chart": release["chart"]}]
            return self._result(args, out=listed)
        if args[0] == "get" and args[1] == "values":
            return self._result(args, out=self.releases[(ns, args[2])]["values"])
        if args[0] == "upgrade":
            mongo = self.cloud.mongo
            if mongo.root is None:  # MongoDB initialises its root user from the Secret on an empty volume
                secret = self.secrets.get((ns, "sacred-mongodb-auth"), {})
                mongo.root = ("sacred", base64.b64decode(secret.get("mongodb-password", "")).decode())
            mongo.running = True
            self.namespaces.add(ns)
            self.releases[(ns, args[2])] = {
                "status": "deployed", "chart": "sacred-0.2.0", "values": json.loads(input or b"{}"),
            }  # fmt: skip
            self.pvcs.setdefault(ns, ["pvc-0001"])
            handle = f"projects/{self.cloud.project}/zones/{self.cloud.region}-a/disks/pvc-0001"
            self.pvs.setdefault("pvc-0001", {"spec": {"csi": {"volumeHandle": handle}}})
            return self._result(args)
        raise AssertionError(f"unexpected helm {args}")

    @contextlib.contextmanager
    def port_forward(self, namespace: str, service: str, remote_port: int, *, local_port: int = 0) -> Iterator[Forward]:
        self.forwards.append((namespace, service, remote_port))
        self.cloud.record("kubectl", "port-forward", {"service": service, "port": remote_port}, mutating=False)
        yield Forward(port=local_port or 45678)


# --- DVC --------------------------------------------------------------------------------


class FakeDvc:
    """The functions of :mod:`vertex_edge.dvc` the gcp steps use, over an in-memory config."""

    def __init__(self, cloud: FakeCloud, *, initialised: bool = True) -> None:
        self.cloud = cloud
        self.initialised = initialised
        self.config: dict[str, dict[str, str]] = {"project": {}, "local": {}}

    def _rec(self, method: str, mutating: bool, **kwargs: Any) -> None:
        self.cloud.record("dvc", method, kwargs, mutating=mutating)

    def is_initialised(self, repo: Any) -> bool:
        return self.initialised

    def init(self, repo: Any) -> None:
        self._rec("init", True)
        self.initialised = True

    def remote_url(self, repo: Any, name: str, *, level: str = "local") -> str | None:
        self._rec("remote_url", False, name=name, level=level)
        return self.config[level].get(f"remote.{name}.url")

    def default_remote(self, repo: Any, *, level: str = "local") -> str | None:
        self._rec("default_remote", False, level=level)
        return self.config[level].get("core.remote")

    def set_remote(self, repo: Any, name: str, url: str, *, level: str = "local", default: bool = True) -> None:
        self._rec("set_remote", True, name=name, url=url, level=level, default=default)
        self.config[level][f"remote.{name}.url"] = url
        if default:
            self.config[level]["core.remote"] = name

    def dvc(self, repo: Any, *args: str, **kwargs: Any) -> str:
        self._rec("dvc", True, args=list(args))
        if args[:2] == ("remote", "default") and "--unset" in args:
            self.config["local"].pop("core.remote", None)
        if args[:2] == ("remote", "remove"):
            name = args[-1]
            level = "project" if "--project" in args else "local"
            self.config[level].pop(f"remote.{name}.url", None)
            if self.config[level].get("core.remote") == name:
                self.config[level].pop("core.remote")
        return ""
