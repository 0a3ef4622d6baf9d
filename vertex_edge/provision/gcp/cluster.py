"""The GKE Autopilot cluster that runs Sacred (MongoDB + Omniboard). Creation takes minutes:
the wait polls the cluster (not the operation), so an interrupted run resumes by waiting for
the same cluster. Teardown deletes it (after the MongoDB volume is kept or deleted) and waits
until it is gone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vertex_edge.errors import CloudError
from vertex_edge.gcp.names import LABELS
from vertex_edge.provision.engine import Action, Check
from vertex_edge.provision.gcp.env import GcpEnv, enum_name
from vertex_edge.provision.gcp.resource import Finding, GcpStep, TeardownItem, Verdict
from vertex_edge.state import Resource

RUNNING = ("RUNNING", "DEGRADED")


def get_cluster(env: GcpEnv) -> Any | None:
    """The cluster as the Container API reports it, or None when there is none."""
    from google.api_core import exceptions as gexc  # deferred: a heavy import (see vertex_edge.gcp.errors)

    try:
        return env.gcp.container.get_cluster(request={"name": env.names.cluster_path}, timeout=env.call_timeout)
    except gexc.NotFound:
        return None


def cluster_status(cluster: Any | None) -> str:
    return enum_name(cluster.status) if cluster is not None else "NOT FOUND"


def wait_for_cluster(
    env: GcpEnv, done: Callable[[Any | None], bool], *, state: Callable[[Any | None], str], hint: str
) -> None:
    """Poll the cluster until ``done(cluster)``, telling the spinner its ``state`` between polls;
    :class:`CloudError` with ``hint`` once ``env.cluster_timeout`` has passed."""
    name, started = env.names.cluster, env.clock()
    while not done(cluster := get_cluster(env)):
        elapsed = env.clock() - started
        if elapsed > env.cluster_timeout:
            raise CloudError(f"GKE cluster {name} is still {state(cluster)} after {elapsed / 60:.0f} minutes", hint=hint)
        env.notify(f"cluster {name} is {state(cluster)}")
        env.sleep(env.poll_interval)


class ClusterStep(GcpStep):
    key = "cluster"
    title = "GKE Autopilot cluster"
    api = "container.googleapis.com"

    def expected(self) -> Resource:
        return Resource(
            kind="gke-cluster",
            name=self.names.cluster,
            location=self.names.cluster_path,
            details={"autopilot": True, "region": self.names.region},
        )

    def describe(self) -> str:
        return f"{self.names.cluster} in {self.names.region}, Autopilot, REGULAR release channel"

    def _check(self) -> Check:
        cluster = get_cluster(self.env)
        if cluster is None:
            return Check(Action.CREATE, f"{self.describe()} (takes 5-15 minutes)")
        status = cluster_status(cluster)
        message = str(getattr(cluster, "status_message", "") or "")
        if status in RUNNING:
            self.env.cluster_ready = True
            note = f" (DEGRADED: {message})" if status == "DEGRADED" else ""
            return Check(Action.KEEP, f"{self.names.cluster} running{note}", self.expected())
        if status in ("PROVISIONING", "RECONCILING"):
            return Check(Action.UPDATE, f"{self.names.cluster} is {status}: wait until it runs")
        if status == "STOPPING":
            why = f"{self.names.cluster} is being deleted: wait until it is gone, then re-run"
        else:
            why = (
                f"{self.names.cluster} is in state {status}" + (f" ({message})" if message else "")
                + ": delete it with 'python edge.py teardown' and re-run setup"
            )  # fmt: skip
        return Check(Action.UNKNOWN, self.names.cluster, why=why)

    def request(self) -> dict[str, Any]:
        return {
            "parent": self.names.location_path,
            "cluster": {
                "name": self.names.cluster,
                "autopilot": {"enabled": True},
                "release_channel": {"channel": "REGULAR"},
                "ip_allocation_policy": {"use_ip_aliases": True},
                "resource_labels": dict(LABELS),
            },
        }

    def _apply(self, check: Check) -> Resource:
        from google.api_core import exceptions as gexc  # deferred: a heavy import (see vertex_edge.gcp.errors)

        if check.action is Action.CREATE:
            try:
                self.env.gcp.container.create_cluster(request=self.request(), timeout=self.env.call_timeout)
            except gexc.AlreadyExists:
                pass
        self.wait_until_running()
        self.env.cluster_ready = True
        return self.expected()

    def wait_until_running(self) -> None:
        def running(cluster: Any | None) -> bool:
            status = cluster_status(cluster)
            if status in ("ERROR", "STOPPING", "NOT FOUND"):
                message = str(getattr(cluster, "status_message", "") or "")
                raise CloudError(
                    f"GKE cluster {self.names.cluster} is {status}" + (f": {message}" if message else ""),
                    hint="delete it with 'python edge.py teardown', then run setup again",
                )
            return status in RUNNING

        wait_for_cluster(
            self.env, running, state=cluster_status, hint="run 'python edge.py setup --target gcp' again to keep waiting"
        )


class ClusterItem(TeardownItem):
    key = "cluster"
    title = "GKE cluster"
    removes = ("cluster", "mongodb_k8s_secret", "sacred", "mongodb_users")

    def describe(self) -> str:
        return f"{self.names.cluster} with MongoDB and Omniboard"

    def _check(self) -> Finding:
        cluster = get_cluster(self.env)
        if cluster is None:
            return Finding(Verdict.ABSENT, self.names.cluster)
        status = cluster_status(cluster)
        detail = self.describe()
        if status == "STOPPING":
            detail = f"{self.names.cluster} (already being deleted)"
        return Finding(Verdict.DELETE, detail, data=status)

    def _delete(self, finding: Finding) -> None:
        from google.api_core import exceptions as gexc  # deferred: a heavy import (see vertex_edge.gcp.errors)

        env = self.env
        env.close()  # the kubeconfig for this cluster is of no use any more
        if finding.data != "STOPPING":
            try:
                env.gcp.container.delete_cluster(request={"name": self.names.cluster_path}, timeout=env.call_timeout)
            except gexc.NotFound:
                return
        self.wait_until_gone()

    def wait_until_gone(self) -> None:
        wait_for_cluster(
            self.env,
            lambda cluster: cluster is None,
            state=lambda cluster: "being deleted",
            hint="run 'python edge.py teardown' again later to check",
        )
