"""Every GCP resource name the gcp target uses, derived once from ``edge.yaml``.

Setup, teardown, the dashboard and training all read names from here, so they always
agree on what they are talking about.
"""

from __future__ import annotations

from dataclasses import dataclass

from vertex_edge.config import EdgeConfig
from vertex_edge.errors import ConfigError

LABELS = {"managed-by": "vertex-edge"}

#: the MongoDB accounts on the gcp target (least privilege): root creates the other two
ROOT, WRITER, READER = "root", "writer", "reader"
STATE_PREFIX = ".edge"
DVC_REMOTE_NAME = "edge-gcs"

# The APIs the gcp target needs (Service Usage ids). Resource Manager and Cloud Billing serve
# the pre-checks; Compute Engine and IAM Credentials are what GKE and Vertex AI rely on.
REQUIRED_APIS: tuple[str, ...] = (
    "storage.googleapis.com",
    "aiplatform.googleapis.com",
    "container.googleapis.com",
    "compute.googleapis.com",
    "secretmanager.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudbilling.googleapis.com",
    "iamcredentials.googleapis.com",
)

# Regions where Vertex AI serves online prediction endpoints (https://cloud.google.com/vertex-ai/docs/general/locations).
VERTEX_AI_REGIONS: frozenset[str] = frozenset(
    {
        "us-central1", "us-east1", "us-east4", "us-east5", "us-south1", "us-west1", "us-west2", "us-west3",
        "us-west4", "northamerica-northeast1", "northamerica-northeast2", "southamerica-east1",
        "southamerica-west1", "europe-central2", "europe-north1", "europe-southwest1", "europe-west1",
        "europe-west2", "europe-west3", "europe-west4", "europe-west6", "europe-west8", "europe-west9",
        "europe-west12", "me-central1", "me-central2", "me-west1", "africa-south1", "asia-east1", "asia-east2",
        "asia-northeast1", "asia-northeast2", "asia-northeast3", "asia-south1", "asia-southeast1",
        "asia-southeast2", "australia-southeast1", "australia-southeast2",
    }
)  # fmt: skip


@dataclass(frozen=True)
class MongoAccount:
    """One MongoDB user: its password in Secret Manager and, for those a pod needs, a Kubernetes Secret."""

    role: str  # ROOT, WRITER or READER
    user: str
    secret_id: str
    secret_path: str
    state_key: str  # the state's record of its password
    k8s_secret: str | None  # None: never in the cluster (Sacred writes from this machine)
    purpose: str

    @property
    def title(self) -> str:
        return {ROOT: "MongoDB password", WRITER: "MongoDB writer password", READER: "MongoDB reader password"}[self.role]


@dataclass(frozen=True)
class GcpNames:
    project: str
    region: str
    bucket: str
    dvc_prefix: str
    artifact_repository: str
    cluster: str
    namespace: str
    endpoint_display_name: str
    sacred: bool  # whether the GKE cluster with Sacred is part of the target

    # fixed names inside the cluster (the helm/sacred chart uses the release name as prefix)
    release: str = "sacred"
    mongodb_user: str = "sacred"  # the root user (MongoDB was initialised with it: the name stays)
    mongodb_writer: str = "sacred-writer"  # readWrite on the Sacred database: training, experiments
    mongodb_reader: str = "omniboard"  # read on it (and Omniboard's own settings): Omniboard
    mongodb_db: str = "sacred"
    mongodb_port: int = 27017
    omniboard_port: int = 9000

    @classmethod
    def from_config(cls, config: EdgeConfig) -> GcpNames:
        gcp = config.gcp
        if gcp is None:
            raise ConfigError(
                "edge.yaml has no 'gcp' section", hint="run 'python edge.py setup --target gcp --project P'"
            )
        return cls(
            project=gcp.project,
            region=gcp.region,
            bucket=gcp.bucket_name,
            dvc_prefix=gcp.dvc_prefix.strip("/"),
            artifact_repository=gcp.artifact_repository,
            cluster=gcp.cluster,
            namespace=gcp.sacred_namespace,
            endpoint_display_name=gcp.endpoint or f"{config.model.name}-endpoint",
            sacred=config.tracking.enabled and not config.tracking.mongodb_url,
        )

    # --- paths -------------------------------------------------------------------------
    @property
    def project_path(self) -> str:
        return f"projects/{self.project}"

    @property
    def location_path(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"

    @property
    def dvc_url(self) -> str:
        return f"gs://{self.bucket}/{self.dvc_prefix}"

    @property
    def state_url(self) -> str:
        return f"gs://{self.bucket}/{STATE_PREFIX}/state.yaml"

    @property
    def repository_path(self) -> str:
        return f"{self.location_path}/repositories/{self.artifact_repository}"

    @property
    def docker_registry(self) -> str:
        """Image prefix: ``<region>-docker.pkg.dev/<project>/<repository>``."""
        return f"{self.region}-docker.pkg.dev/{self.project}/{self.artifact_repository}"

    @property
    def cluster_path(self) -> str:
        return f"{self.location_path}/clusters/{self.cluster}"

    @property
    def secret_id(self) -> str:
        return f"{self.cluster}-mongodb-password"

    @property
    def secret_path(self) -> str:
        return f"{self.project_path}/secrets/{self.secret_id}"

    def account(self, role: str) -> MongoAccount:
        """The MongoDB account ``role`` (ROOT, WRITER or READER)."""
        suffix = {ROOT: "", WRITER: "-writer", READER: "-reader"}[role]
        secret_id = f"{self.cluster}-mongodb{suffix}-password"
        user = {ROOT: self.mongodb_user, WRITER: self.mongodb_writer, READER: self.mongodb_reader}[role]
        k8s = {ROOT: f"{self.release}-mongodb-auth", WRITER: None, READER: f"{self.release}-mongodb-reader"}[role]
        purpose = {ROOT: "initialises MongoDB and creates the other users",
                   WRITER: f"readWrite on database {self.mongodb_db}: training and 'edge.py experiments'",
                   READER: f"read on database {self.mongodb_db}: Omniboard"}[role]  # fmt: skip
        return MongoAccount(role, user, secret_id, f"{self.project_path}/secrets/{secret_id}",
                            "mongodb_password" if role == ROOT else f"mongodb_{role}_password", k8s, purpose)  # fmt: skip

    @property
    def accounts(self) -> tuple[MongoAccount, ...]:
        return tuple(self.account(role) for role in (ROOT, WRITER, READER))

    # --- inside the cluster -------------------------------------------------------------
    @property
    def k8s_secret(self) -> str:
        return f"{self.release}-mongodb-auth"

    @property
    def reader_k8s_secret(self) -> str:
        return f"{self.release}-mongodb-reader"

    @property
    def mongodb_service(self) -> str:
        return f"{self.release}-mongodb"

    @property
    def omniboard_service(self) -> str:
        return f"{self.release}-omniboard"

    @property
    def omniboard_deployment(self) -> str:
        return f"{self.release}-omniboard"

    def helm_values(self) -> dict[str, object]:
        """The values ``helm/sacred`` is installed with: names only, never a password."""
        return {
            "auth": {"existingSecret": self.k8s_secret, "reader": {"existingSecret": self.reader_k8s_secret}},
            "mongodb": {"database": self.mongodb_db},
        }
