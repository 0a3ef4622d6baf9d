"""Every GCP resource name the gcp target uses, derived once from ``edge.yaml``.

Setup, teardown, the dashboard and training all read names from here, so they always
agree on what they are talking about.
"""

from __future__ import annotations

from dataclasses import dataclass

from vertex_edge.config import EdgeConfig
from vertex_edge.errors import ConfigError

LABELS = {"managed-by": "vertex-edge"}
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
    mongodb_user: str = "sacred"
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

    # --- inside the cluster -------------------------------------------------------------
    @property
    def k8s_secret(self) -> str:
        return f"{self.release}-mongodb-auth"

    @property
    def mongodb_service(self) -> str:
        return f"{self.release}-mongodb"

    @property
    def omniboard_service(self) -> str:
        return f"{self.release}-omniboard"

    def helm_values(self) -> dict[str, object]:
        """The values ``helm/sacred`` is installed with: names only, never the password."""
        return {"auth": {"existingSecret": self.k8s_secret}, "mongodb": {"database": self.mongodb_db}}
