"""Build the deployer ``edge.yaml``'s target asks for, with its real clients: the only deploy
module that opens Google Cloud clients or reads the gcp state.

* ``local`` - :class:`~vertex_edge.deploy.local_endpoint.LocalDeployer`: the registry and the
  endpoint's traffic map under the storage root, served by ``python edge.py serve``.
* ``gcp`` - :class:`~vertex_edge.deploy.vertex_endpoint.VertexDeployer`: Vertex AI Model Registry
  and the endpoint ``edge.py setup`` recorded in the state; the versions' artifact folders checked
  in the bucket, the container's capture settings (records in
  ``gs://<bucket>/monitoring/<model>/records``) and the endpoint's request-response logging from
  ``edge.yaml`` ``monitoring``.
"""

from __future__ import annotations

from pathlib import Path

from vertex_edge.config import EdgeConfig
from vertex_edge.deploy.candidate import Deployer
from vertex_edge.deploy.local_endpoint import LocalDeployer
from vertex_edge.deploy.remote_model import verify_model_folder
from vertex_edge.deploy.vertex_endpoint import VertexDeployer
from vertex_edge.errors import NotProvisionedError, UsageError
from vertex_edge.gcp.clients import GcpClients
from vertex_edge.gcp.files import Files
from vertex_edge.gcp.names import GcpNames
from vertex_edge.gcp.object_store import state_store
from vertex_edge.gitinfo import git_info
from vertex_edge.layout import LocalLayout
from vertex_edge.monitoring.settings import MonitoringPaths
from vertex_edge.registry import LocalRegistry
from vertex_edge.vertex.submit import artifact_registry_check

PREDICTION_IMAGE = "prediction"


def get_deployer(config: EdgeConfig, repo: Path) -> Deployer:
    """The deployer for ``config.target``."""
    if config.target == "gcp":
        return vertex_deployer(config, repo)
    layout = LocalLayout.from_config(config, repo)
    name = config.model.name
    return LocalDeployer(LocalRegistry(layout.registry, name), f"{name}-endpoint", layout.repo)


def serving_model_dir(config: EdgeConfig, repo: Path) -> str | None:
    """gcp target: the artifact folder (gs://) of the version the Vertex AI endpoint serves."""
    return vertex_deployer(config, repo, reading=True).serving_model_uri()


def vertex_deployer(config: EdgeConfig, repo: Path, *, reading: bool = False) -> VertexDeployer:
    """Real clients on Application Default Credentials; the endpoint from the gcp state
    (``reading``: only to read the endpoint, so no prediction image is named)."""
    from google.cloud import aiplatform  # deferred: the SDK takes seconds to import

    gcp = config.require_gcp("deploying to Vertex AI")
    names = GcpNames.from_config(config)
    clients = GcpClients.connect(gcp.project, gcp.region)
    state, _ = state_store(clients, names).load()
    endpoint = state.resources.get("endpoint") if state is not None else None
    if endpoint is None or not endpoint.location:
        raise NotProvisionedError(
            f"the gcp state ({names.state_url}) records no Vertex AI endpoint",
            hint="run 'python edge.py setup --target gcp'",
        )
    serving = config.vertex.serving
    image = serving.image or ("" if reading else f"{names.docker_registry}/{PREDICTION_IMAGE}:{_commit(repo)}")
    files = Files(clients.storage)
    monitoring = config.monitoring
    return VertexDeployer(
        aip=aiplatform, upload_dir=files.upload_tree, project=gcp.project, location=gcp.region,
        bucket=names.bucket, endpoint_name=endpoint.location, model_name=config.model.name, serving_image=image,
        machine_type=serving.machine_type, min_replicas=serving.min_replicas, max_replicas=serving.max_replicas,
        credentials=clients.credentials, image_check=artifact_registry_check(clients.artifact_registry),
        verify_model=lambda uri: verify_model_folder(files, uri),
        serving_env=monitoring.server_env(MonitoringPaths.for_config(config, repo).records),
        endpoint_service=lambda: clients.endpoints,  # built on first use (a slow import)
        request_logging_rate=monitoring.sample_rate if monitoring.request_response_logging else 0.0,
    )  # fmt: skip


def _commit(repo: Path) -> str:
    commit = git_info(repo).commit
    if not commit:
        raise UsageError(
            "cannot name the prediction image: this is not a git checkout with a commit",
            hint="set vertex.serving.image in edge.yaml",
        )
    return commit
