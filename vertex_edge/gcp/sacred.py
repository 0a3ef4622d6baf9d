"""Sacred on GKE, reached from this machine: MongoDB (for training runs and `experiments`) and
Omniboard, each through a ``kubectl port-forward`` on 127.0.0.1 that lives only as long as the
command that needs it. Both Services are ClusterIP (never exposed on the internet).

Training and ``edge.py experiments`` connect as the Sacred writer (readWrite on the Sacred
database only); the root user is used only by ``edge.py setup`` to create the users, Omniboard
reads as its read-only user. The password is read from Secret Manager at run time; the URL
holding it lives only in memory (never in ``os.environ``, argv, logs or files).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from vertex_edge.config import EdgeConfig
from vertex_edge.errors import ExternalToolError, NotProvisionedError, TrackingError
from vertex_edge.gcp.clients import GcpClients
from vertex_edge.gcp.kube import Forward, KubeRunner, not_found, stderr_tail
from vertex_edge.gcp.names import WRITER, GcpNames
from vertex_edge.gcp.secret import read_password
from vertex_edge.tracking.target import MONGO_ENV, OFFLINE_ENV, truthy

MONGO_TIMEOUT_MS = 10_000


def mongo_url(user: str, password: str, port: int, *, db: str = "sacred") -> str:
    """``mongodb://user:password@127.0.0.1:port/db?authSource=admin`` (a secret: never print or log it)."""
    return f"mongodb://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{port}/{db}?authSource=admin"


def mongo_client(url: str) -> Any:
    """A pymongo client for ``url`` (through a port-forward: one direct connection, short timeouts)."""
    import pymongo  # deferred: only setup's user management and tracking need it

    return pymongo.MongoClient(
        url, directConnection=True, serverSelectionTimeoutMS=MONGO_TIMEOUT_MS, connectTimeoutMS=MONGO_TIMEOUT_MS
    )


@contextlib.contextmanager
def mongo_url_via_port_forward(config: EdgeConfig, clients: GcpClients) -> Iterator[str]:
    """For training on the gcp target: yields a MongoDB URL (the Sacred writer's: readWrite on the
    Sacred database only) that reaches the cluster's MongoDB through a port-forward open for the
    duration of the ``with`` block.

    The password is read from Secret Manager at run time; the URL lives only in memory (give
    it to ``pymongo.MongoClient`` / Sacred's MongoObserver; redact it with
    :func:`vertex_edge.redact.redact_url` before showing it)."""
    names = GcpNames.from_config(config)
    if not names.sacred:
        raise TrackingError(
            "the gcp target has no MongoDB in GKE (tracking is off or tracking.mongodb_url points elsewhere)",
            hint="set tracking.enabled: true, remove tracking.mongodb_url, run 'python edge.py setup --target gcp'",
        )
    writer = names.account(WRITER)
    password = read_password(clients, names, WRITER)
    with clients.kube(names.cluster_path) as kube:
        _require_service(kube, names.namespace, names.mongodb_service)
        with kube.port_forward(names.namespace, names.mongodb_service, names.mongodb_port) as forward:
            yield mongo_url(writer.user, password, forward.port, db=names.mongodb_db)


@contextlib.contextmanager
def omniboard_via_port_forward(config: EdgeConfig, clients: GcpClients, *, local_port: int = 0) -> Iterator[Forward]:
    """A port-forward to Omniboard in the cluster (``forward.url`` is the local URL)."""
    names = GcpNames.from_config(config)
    if not names.sacred:
        raise TrackingError(
            "the gcp target has no Omniboard in GKE (tracking is off or tracking.mongodb_url points elsewhere)",
            hint="use 'python edge.py experiments list'",
        )
    with clients.kube(names.cluster_path) as kube:
        _require_service(kube, names.namespace, names.omniboard_service)
        with kube.port_forward(
            names.namespace, names.omniboard_service, names.omniboard_port, local_port=local_port
        ) as forward:
            yield forward


def _require_service(kube: KubeRunner, namespace: str, service: str) -> None:
    result = kube.kubectl(["get", "service", service, "--namespace", namespace, "-o", "name"], check=False)
    if not_found(result):
        raise NotProvisionedError(
            f"service {service} is not in namespace {namespace} of the cluster",
            hint="run 'python edge.py setup --target gcp' to install helm/sacred",
        )
    if result.returncode != 0:
        raise ExternalToolError(f"kubectl get service {service} failed: {stderr_tail(result)}")


@contextlib.contextmanager
def tracking_environment(
    config: EdgeConfig, env: Mapping[str, str], *, offline: bool = False
) -> Iterator[dict[str, str]]:
    """The environment to resolve tracking with.

    On the gcp target, with Sacred on GKE (no MongoDB URL of the user's own), this opens a
    port-forward to the cluster's MongoDB for the ``with`` block and adds ``EDGE_MONGODB_URL``
    (password from Secret Manager) to the returned copy - never to ``os.environ``, never logged.
    """
    out = dict(env)
    wants_cluster = (
        config.target == "gcp"
        and config.tracking.enabled
        and not offline
        and not truthy(out.get(OFFLINE_ENV))
        and not out.get(MONGO_ENV)
        and not config.tracking.mongodb_url
    )
    if not wants_cluster or config.gcp is None:
        yield out
        return
    clients = GcpClients.connect(config.gcp.project, config.gcp.region)
    with mongo_url_via_port_forward(config, clients) as url:
        out[MONGO_ENV] = url
        yield out
