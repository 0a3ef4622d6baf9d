"""The Artifact Registry Docker repository for the project's images (prediction, training,
web app); teardown deletes it with every image in it."""

from __future__ import annotations

from typing import Any

from vertex_edge.gcp.names import LABELS
from vertex_edge.provision.engine import Action, Check
from vertex_edge.provision.gcp.env import GcpEnv, enum_name
from vertex_edge.provision.gcp.resource import Finding, GcpStep, TeardownItem, Verdict
from vertex_edge.state import Resource


def get_repository(env: GcpEnv) -> Any | None:
    """The repository, or None when there is none."""
    from google.api_core import exceptions as gexc  # deferred: a heavy import (see vertex_edge.gcp.errors)

    try:
        return env.gcp.artifact_registry.get_repository(
            request={"name": env.names.repository_path}, timeout=env.call_timeout
        )
    except gexc.NotFound:
        return None


class ArtifactRepositoryStep(GcpStep):
    key = "artifact_registry"
    title = "Artifact Registry repository"
    api = "artifactregistry.googleapis.com"

    def expected(self) -> Resource:
        return Resource(
            kind="artifact-registry",
            name=self.names.artifact_repository,
            location=self.names.docker_registry,
            details={"format": "DOCKER", "resource": self.names.repository_path},
        )

    def describe(self) -> str:
        return f"Docker repository {self.names.docker_registry}"

    def _check(self) -> Check:
        repo = get_repository(self.env)
        if repo is None:
            return Check(Action.CREATE, self.describe())
        if enum_name(repo.format_) != "DOCKER":
            return Check(
                Action.UNKNOWN,
                self.describe(),
                why=f"{self.names.repository_path} exists but is a {enum_name(repo.format_)} repository, not Docker "
                "(set gcp.artifact_repository to another name)",
            )
        return Check(Action.KEEP, self.names.docker_registry, self.expected())

    def _apply(self, check: Check) -> Resource:
        from google.api_core import exceptions as gexc  # deferred: a heavy import (see vertex_edge.gcp.errors)

        request = {
            "parent": self.names.location_path,
            "repository_id": self.names.artifact_repository,
            "repository": {
                "format_": "DOCKER",
                "description": "vertex-edge images: prediction, training, web app",
                "labels": dict(LABELS),
            },
        }
        try:
            operation = self.env.gcp.artifact_registry.create_repository(
                request=request, timeout=self.env.call_timeout
            )
            self.wait_operation(operation, "the repository")
        except gexc.AlreadyExists:
            pass
        return self.expected()


class RepositoryItem(TeardownItem):
    key = "artifact_registry"
    title = "Artifact Registry repository"
    removes = ("artifact_registry",)

    def describe(self) -> str:
        return self.names.docker_registry

    def _check(self) -> Finding:
        if get_repository(self.env) is None:
            return Finding(Verdict.ABSENT, self.describe())
        return Finding(Verdict.DELETE, f"{self.names.docker_registry} and every image in it")

    def _delete(self, finding: Finding) -> None:
        env = self.env
        env.notify(f"deleting {self.names.repository_path}")
        operation = env.gcp.artifact_registry.delete_repository(
            request={"name": self.names.repository_path}, timeout=env.call_timeout
        )
        operation.result(timeout=env.operation_timeout)
