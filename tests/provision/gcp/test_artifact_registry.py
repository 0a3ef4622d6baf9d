"""An Artifact Registry repository of another format under our name is left alone."""

from __future__ import annotations

from typing import Any

from tests.gcp.fakes import FakeCloud
from tests.provision.gcp.helpers import LOC
from vertex_edge.provision.engine import Action
from vertex_edge.provision.gcp.artifact_registry import ArtifactRepositoryStep


def test_artifact_repository_of_another_format_is_not_touched(make_env: Any, cloud: FakeCloud) -> None:
    cloud.enabled_apis = {"artifactregistry.googleapis.com"}
    cloud.repositories[f"{LOC}/repositories/edge"] = "PYTHON"
    check = ArtifactRepositoryStep(make_env()).check()
    assert check.action is Action.UNKNOWN and "is a PYTHON repository, not Docker" in check.why
    assert check.detail == "Docker repository us-central1-docker.pkg.dev/demo-project-1/edge"
