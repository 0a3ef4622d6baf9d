"""The Vertex AI endpoint models are deployed to (found by display name; Google assigns its
resource name). Teardown undeploys every model on it, then deletes it."""

from __future__ import annotations

from typing import Any

from vertex_edge.gcp.names import LABELS
from vertex_edge.provision.engine import Action, Check
from vertex_edge.provision.gcp.env import GcpEnv
from vertex_edge.provision.gcp.resource import Finding, GcpStep, TeardownItem, Verdict
from vertex_edge.state import Resource


def find_endpoints(env: GcpEnv) -> list[Any]:
    """Every endpoint with the target's display name, by resource name."""
    pager = env.gcp.endpoints.list_endpoints(
        request={
            "parent": env.names.location_path,
            "filter": f'display_name="{env.names.endpoint_display_name}"',
        },
        timeout=env.call_timeout,
    )
    return sorted(pager, key=lambda e: str(e.name))


class EndpointStep(GcpStep):
    key = "endpoint"
    title = "Vertex AI endpoint"
    api = "aiplatform.googleapis.com"

    def __init__(self, env: GcpEnv) -> None:
        super().__init__(env)
        self.resource_name = ""

    def expected(self) -> Resource:
        return Resource(
            kind="vertex-endpoint",
            name=self.names.endpoint_display_name,
            location=self.resource_name,
            details={"region": self.names.region},
        )

    def describe(self) -> str:
        return f"{self.names.endpoint_display_name} in {self.names.location_path}"

    def _check(self) -> Check:
        found = find_endpoints(self.env)
        if not found:
            return Check(Action.CREATE, self.describe())
        self.resource_name = str(found[0].name)
        note = f" ({len(found)} endpoints share this name; using the first)" if len(found) > 1 else ""
        return Check(Action.KEEP, self.resource_name + note, self.expected())

    def _apply(self, check: Check) -> Resource:
        operation = self.env.gcp.endpoints.create_endpoint(
            request={
                "parent": self.names.location_path,
                "endpoint": {
                    "display_name": self.names.endpoint_display_name,
                    "description": "vertex-edge model endpoint",
                    "labels": dict(LABELS),
                },
            },
            timeout=self.env.call_timeout,
        )
        endpoint = self.wait_operation(operation, "the endpoint")
        self.resource_name = str(endpoint.name)
        return self.expected()


class EndpointItem(TeardownItem):
    key = "endpoint"
    title = "Vertex AI endpoint"
    removes = ("endpoint",)

    def describe(self) -> str:
        return f"{self.names.endpoint_display_name} in {self.names.location_path}"

    def _check(self) -> Finding:
        found = find_endpoints(self.env)
        if not found:
            return Finding(Verdict.ABSENT, self.describe())
        models = sum(len(e.deployed_models) for e in found)
        detail = self.describe()
        if models:
            detail += f" ({models} deployed model(s) undeployed first)"
        return Finding(Verdict.DELETE, detail, data=found)

    def _delete(self, finding: Finding) -> None:
        api, env = self.env.gcp.endpoints, self.env
        for endpoint in finding.data:
            ids = [str(m.id) for m in endpoint.deployed_models]
            for i, model_id in enumerate(ids):
                request: dict[str, Any] = {"endpoint": endpoint.name, "deployed_model_id": model_id}
                rest = ids[i + 1 :]
                if rest:  # traffic must go to the models still deployed
                    request["traffic_split"] = {rid: (100 if j == 0 else 0) for j, rid in enumerate(rest)}
                env.notify(f"undeploying model {model_id}")
                api.undeploy_model(request=request, timeout=env.call_timeout).result(timeout=env.operation_timeout)
            env.notify(f"deleting {endpoint.name}")
            api.delete_endpoint(request={"name": endpoint.name}, timeout=env.call_timeout).result(
                timeout=env.operation_timeout
            )
