"""The gcp target, one module per resource: its setup step and its teardown side by side.

Setup order: APIs (:mod:`.apis`) -> bucket (:mod:`.bucket`) -> DVC remote (:mod:`.dvc_remote`)
-> Artifact Registry (:mod:`.artifact_registry`) -> GKE Autopilot cluster (:mod:`.cluster`) ->
MongoDB passwords (root, Sacred writer, Omniboard reader) in Secret Manager and the Kubernetes
Secrets of root and the reader (:mod:`.mongodb`) -> helm/sacred (:mod:`.sacred_release`) ->
MongoDB's least-privilege users, made by root (:mod:`.mongodb_users`) -> Vertex AI endpoint
(:mod:`.endpoint`) -> state (:mod:`.state`).
Teardown runs the other way (:mod:`.teardown`). Shared pieces: :mod:`.env` (names, clients,
the gate, guarded checks), :mod:`.resource` (the step and teardown-item bases),
:mod:`.preflight` (pre-checks).

A step whose API is not enabled yet, or whose cluster does not exist yet, is reported "will
create" without calling the API; once Google proves unreachable every later check is "not
checked", and every line still names its resource in full.
"""

from __future__ import annotations

from vertex_edge.gcp.names import READER, ROOT, WRITER
from vertex_edge.provision.engine import Step
from vertex_edge.provision.gcp.apis import ApisStep
from vertex_edge.provision.gcp.artifact_registry import ArtifactRepositoryStep, RepositoryItem
from vertex_edge.provision.gcp.bucket import BucketItem, BucketStep
from vertex_edge.provision.gcp.cluster import ClusterItem, ClusterStep
from vertex_edge.provision.gcp.dvc_remote import DvcRemoteItem, DvcRemoteStep
from vertex_edge.provision.gcp.endpoint import EndpointItem, EndpointStep
from vertex_edge.provision.gcp.env import GcpEnv
from vertex_edge.provision.gcp.mongodb import (
    KeptDisksItem,
    KubeSecretStep,
    MongoPasswordStep,
    MongoVolumeItem,
    PasswordItem,
)
from vertex_edge.provision.gcp.mongodb_users import MongoUsersStep
from vertex_edge.provision.gcp.resource import TeardownItem
from vertex_edge.provision.gcp.sacred_release import SacredReleaseStep
from vertex_edge.provision.gcp.state import StateStep

# Steps that must exist before the state lock can be taken (the lock lives in the bucket).
BEFORE_LOCK = ("apis", "bucket")


def gcp_steps(env: GcpEnv) -> list[Step]:
    """The gcp target's steps in order; the cluster and Sacred only when tracking goes to them."""
    steps: list[Step] = [ApisStep(env), BucketStep(env), DvcRemoteStep(env), ArtifactRepositoryStep(env)]
    if env.names.sacred:
        steps += [ClusterStep(env), *(MongoPasswordStep(env, role) for role in (ROOT, WRITER, READER)),
                  KubeSecretStep(env), SacredReleaseStep(env), MongoUsersStep(env)]  # fmt: skip
    steps.append(EndpointStep(env))
    steps.append(StateStep(env, list(steps)))
    return steps


def teardown_items(env: GcpEnv, *, delete_data: bool) -> list[TeardownItem]:
    """In reverse order of setup: endpoint (its deployed models first) -> MongoDB volume (and the
    disks kept earlier; the users live in it) -> cluster -> passwords -> repository -> DVC remote
    -> bucket."""
    items: list[TeardownItem] = [EndpointItem(env, delete_data=delete_data)]
    if env.names.sacred:
        items += [kind(env, delete_data=delete_data) for kind in (MongoVolumeItem, KeptDisksItem, ClusterItem)]
        items += [PasswordItem(env, delete_data=delete_data, role=role) for role in (ROOT, WRITER, READER)]
    items += [kind(env, delete_data=delete_data) for kind in (RepositoryItem, DvcRemoteItem, BucketItem)]
    return items
