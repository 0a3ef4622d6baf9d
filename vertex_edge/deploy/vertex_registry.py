"""The Vertex AI Model Registry side of the gcp deployer (:mod:`.vertex_endpoint` is the
Endpoint side): the parent model every version of ``edge.yaml`` ``model.name`` belongs to, its
versions, uploading a trained model as a new version (artifacts in the bucket, the prediction
image with the Vertex AI custom-container contract and the capture settings in its
environment, lineage labels), and checking a version's artifact folder against its card
(:mod:`.remote_model`) before it becomes the target of a deploy, a traffic change or a rollback.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vertex_edge.artifact import CARD_FILE, MODEL_FILES, ModelCard
from vertex_edge.deploy.candidate import Candidate, deploy_user
from vertex_edge.deploy.traffic import rollback_refused, version_alias
from vertex_edge.errors import DataError, RegistryError
from vertex_edge.gcp.errors import google_call, is_not_found, translate
from vertex_edge.gcp.labels import gcp_label

PREDICT_ROUTE = "/predict"
HEALTH_ROUTE = "/health"
PORT = 8080
ARTIFACTS = (*MODEL_FILES, CARD_FILE)


class RegistryAccess:
    """Mixed into :class:`~vertex_edge.deploy.vertex_endpoint.VertexDeployer`, whose fields it uses."""

    aip: Any
    upload_dir: Callable[[Path, str], None]
    project: str
    location: str
    bucket: str
    model_name: str
    serving_image: str
    credentials: Any
    echo: Callable[[str], None]
    endpoint_name: str
    image_check: Callable[[str], None] | None
    verify_model: Callable[[str], Any] | None
    serving_env: dict[str, str]

    def _where(self) -> dict[str, Any]:
        return {"project": self.project, "location": self.location, "credentials": self.credentials}

    def _parent(self) -> Any | None:
        """The registry model every version of ``model_name`` belongs to (None before the first)."""
        found = google_call("cannot list registry models",
            lambda: self.aip.Model.list(filter=f'display_name="{self.model_name}"', order_by="create_time", **self._where()),
        )
        return found[0] if found else None

    def _version(self, parent: Any, version: str) -> Any | None:
        """The registry version ``version`` (an id or an alias) of ``parent``; None if absent."""
        try:
            return self.aip.Model(model_name=parent.resource_name, version=version, **self._where())
        except Exception as exc:  # noqa: BLE001 - NotFound is the answer; others are errors
            if is_not_found(exc):
                return None
            raise translate(exc, f"cannot read version {version} of {self.model_name}") or exc from None

    def artifact_uri(self, card: ModelCard) -> str:
        return f"gs://{self.bucket}/models/{self.model_name}/{card.version}"

    def _upload(self, candidate: Candidate, parent: Any | None, *, forced: bool) -> Any:
        """The model folder to the bucket, then a new registry version (the prediction image with
        the capture settings in its environment, lineage labels)."""
        if self.image_check is not None:
            self.image_check(self.serving_image)
        card = candidate.card
        uri = self.artifact_uri(card)
        with tempfile.TemporaryDirectory(prefix="edge-model-") as tmp:
            folder = Path(tmp)
            listed = [n for n in card.artifacts if n == Path(n).name]  # e.g. the reference profile
            for name in dict.fromkeys((*ARTIFACTS, *listed)):
                if (candidate.model_dir / name).is_file():
                    (folder / name).write_bytes((candidate.model_dir / name).read_bytes())
            self.echo(f"uploading {candidate.model_dir} to {uri}")
            self.upload_dir(folder, uri)
        labels = {
            "managed-by": "vertex-edge",
            "git_commit": gcp_label(card.git.commit or "none"),
            "git_dirty": "true" if card.git.dirty else "false",
            "data_version": gcp_label(card.data_version or "unknown"),
            "sacred_run_id": gcp_label(card.sacred_run_id or "none"),
            "test_accuracy": gcp_label(f"{candidate.accuracy:.4f}"),
            "quality_gate": "forced" if forced else "passed",
            "gate_threshold": gcp_label(f"{candidate.min_accuracy:.4f}"),
        }
        if forced:
            labels["forced_by"] = gcp_label(deploy_user())
        self.echo(f"registering it in the Vertex AI Model Registry ({self.model_name})")
        return google_call("cannot upload the model to the Vertex AI Model Registry",
            lambda: self.aip.Model.upload(
                display_name=self.model_name,
                parent_model=parent.resource_name if parent is not None else None,
                is_default_version=True,
                version_aliases=[version_alias(card)],
                version_description=f"model {card.version}: {candidate.gate_text()} ({candidate.policy.source})"
                + (f"; deployed with --force by {deploy_user()}" if forced else ""),
                artifact_uri=uri,
                serving_container_image_uri=self.serving_image,
                serving_container_predict_route=PREDICT_ROUTE,
                serving_container_health_route=HEALTH_ROUTE,
                serving_container_ports=[PORT],
                serving_container_environment_variables=dict(self.serving_env) or None,
                labels=labels,
                sync=True,
                **self._where(),
            ),
        )

    def _rollback_target(self, parent: Any | None, current: str) -> Any:
        """The registry version before ``current``, verified; a corrupt one is refused, naming the
        newest intact earlier version."""
        ids: list[int] = []
        if parent is not None:
            registry = google_call("cannot open the model registry", lambda: self.aip.ModelRegistry(model=parent.resource_name, **self._where()))
            versions = google_call("cannot list model versions", registry.list_versions)
            ids = sorted(int(v.version_id) for v in versions if str(v.version_id).isdigit())
        earlier = [str(i) for i in reversed(ids) if current.isdigit() and i < int(current)]
        if not earlier:
            raise RegistryError(
                f"{self.endpoint_name} serves version {current} and the registry has no earlier version",
                hint="deploy a specific version with 'python deploy-vertex.py --version N'",
            )
        target = self._version(parent, earlier[0])
        if target is None:
            raise RegistryError(f"version {earlier[0]} of '{self.model_name}' is listed but cannot be read")
        try:
            self._verify(target)
        except RegistryError as exc:
            intact = next((v for v in earlier[1:] if self._intact(parent, v)), None)
            raise rollback_refused(self.endpoint_name, earlier[0], current, exc.message, intact) from None
        return target

    def _intact(self, parent: Any, version: str) -> bool:
        try:
            self._verify(self._version(parent, version))
        except RegistryError:
            return False
        return True

    def _verify(self, model: Any) -> None:
        """A registry version's artifact folder against its card; :class:`RegistryError` if corrupt."""
        if self.verify_model is None or model is None:
            return
        version = str(model.version_id)
        uri = str(getattr(model, "uri", "") or "")
        if not uri:
            raise RegistryError(f"version {version} of '{self.model_name}' names no artifact folder: it cannot be checked")
        try:
            self.verify_model(uri)
        except DataError as exc:
            raise RegistryError(
                f"version {version} of '{self.model_name}' is corrupt: {exc.message}",
                hint="it cannot take traffic; deploy another version with 'python deploy-vertex.py --version N'",
            ) from None

