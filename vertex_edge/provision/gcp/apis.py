"""The Google Cloud APIs the gcp target needs (:data:`~vertex_edge.gcp.names.REQUIRED_APIS`),
enabled through Service Usage. Teardown leaves them enabled: enabling costs nothing by itself."""

from __future__ import annotations

from vertex_edge.gcp.names import REQUIRED_APIS
from vertex_edge.provision.engine import Action, Check
from vertex_edge.provision.gcp.env import enum_name
from vertex_edge.provision.gcp.resource import GcpStep
from vertex_edge.state import Resource


def short(api: str) -> str:
    return api.removesuffix(".googleapis.com")


class ApisStep(GcpStep):
    key = "apis"
    title = "Google Cloud APIs"

    def expected(self) -> Resource:
        return Resource(
            kind="apis", name="services", location=self.names.project_path, details={"enabled": list(REQUIRED_APIS)}
        )

    def describe(self) -> str:
        return f"{len(REQUIRED_APIS)} APIs in {self.names.project_path}: " + ", ".join(map(short, REQUIRED_APIS))

    def _services(self) -> dict[str, str]:
        names = [f"{self.names.project_path}/services/{api}" for api in REQUIRED_APIS]
        response = self.env.gcp.service_usage.batch_get_services(
            request={"parent": self.names.project_path, "names": names}, timeout=self.env.call_timeout
        )
        return {str(s.name).rsplit("/", 1)[-1]: enum_name(s.state) for s in response.services}

    def _check(self) -> Check:
        states = self._services()
        missing = sorted(api for api in REQUIRED_APIS if states.get(api) != "ENABLED")
        self.env.pending_apis = set(missing)
        if missing:
            return Check(Action.CREATE, "enable " + ", ".join(map(short, missing)))
        return Check(Action.KEEP, f"{len(REQUIRED_APIS)} APIs enabled", self.expected())

    def _apply(self, check: Check) -> Resource:
        missing = sorted(self.env.pending_apis) or list(REQUIRED_APIS)
        operation = self.env.gcp.service_usage.batch_enable_services(
            request={"parent": self.names.project_path, "service_ids": missing}, timeout=self.env.call_timeout
        )
        self.wait_operation(operation, f"{len(missing)} APIs to be enabled")
        self.env.pending_apis = set()
        return self.expected()
