"""``helm/sacred`` in the cluster (MongoDB StatefulSet + Omniboard, both ClusterIP) via
``helm upgrade --install``. Teardown removes it with the cluster; its MongoDB volume is kept
or deleted first (:class:`~vertex_edge.provision.gcp.mongodb.MongoVolumeItem`)."""

from __future__ import annotations

import json

import yaml

from vertex_edge.errors import ExternalToolError
from vertex_edge.provision.engine import Action, Check
from vertex_edge.provision.gcp.resource import GcpStep
from vertex_edge.state import Resource

HELM_WAIT = "10m"


class SacredReleaseStep(GcpStep):
    key = "sacred"
    title = "Sacred on GKE (helm)"

    def expected(self) -> Resource:
        n = self.names
        return Resource(
            kind="helm-release",
            name=n.release,
            location=f"{n.cluster}/{n.namespace}",
            details={
                "chart": f"sacred-{self.chart_version()}",
                "namespace": n.namespace,
                "omniboard_service": n.omniboard_service,
                "omniboard_port": n.omniboard_port,
                "mongodb_service": n.mongodb_service,
                "mongodb_port": n.mongodb_port,
                "mongodb_user": n.mongodb_user,
                "mongodb_database": n.mongodb_db,
                "password_secret": n.secret_path,
                "omniboard_user": n.mongodb_reader,
                "omniboard_secret": n.reader_k8s_secret,
                "service_type": "ClusterIP",
            },
        )

    def describe(self) -> str:
        n = self.names
        return (
            f"release {n.release} in namespace {n.namespace} of cluster {n.cluster}: "
            f"services {n.mongodb_service}:{n.mongodb_port}, {n.omniboard_service}:{n.omniboard_port} (ClusterIP)"
        )

    def chart_version(self) -> str:
        try:
            meta = yaml.safe_load((self.env.chart_dir / "Chart.yaml").read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ExternalToolError(f"cannot read {self.env.chart_dir / 'Chart.yaml'}: {exc}") from None
        return str(meta.get("version"))

    def pending(self) -> str | None:
        return None if self.env.cluster_ready else "once the cluster runs"

    def _check(self) -> Check:
        kube, n = self.env.kube(), self.names
        where = f"release {n.release} in namespace {n.namespace}"
        listed = kube.helm(
            ["list", "--all", "--namespace", n.namespace, "--filter", f"^{n.release}$", "--output", "json"]
        )
        releases = json.loads(listed.stdout or b"[]") or []
        if not releases:
            return Check(Action.CREATE, self.describe())
        release = releases[0]
        want_chart = f"sacred-{self.chart_version()}"
        if release.get("status") != "deployed":
            return Check(Action.UPDATE, f"{n.release} is {release.get('status')}: upgrade")
        self.env.sacred_ready = True  # MongoDB runs (the users can be checked), whatever the upgrade brings
        if release.get("chart") != want_chart:
            return Check(Action.UPDATE, f"{n.release}: {release.get('chart')} -> {want_chart}")
        values = kube.helm(["get", "values", n.release, "--namespace", n.namespace, "--output", "json"])
        if (json.loads(values.stdout or b"{}") or {}) != n.helm_values():
            return Check(Action.UPDATE, f"{n.release}: values changed")
        return Check(Action.KEEP, f"{where} ({want_chart})", self.expected())

    def _apply(self, check: Check) -> Resource:
        n = self.names
        self.env.notify(f"helm upgrade --install {n.release} (waits for MongoDB and Omniboard to be ready)")
        self.env.kube().helm(
            [
                "upgrade", "--install", n.release, str(self.env.chart_dir), "--namespace", n.namespace,
                "--create-namespace", "--wait", "--timeout", HELM_WAIT, "--values", "-",
            ],  # fmt: skip
            input=json.dumps(n.helm_values()).encode("utf-8"),
        )
        self.env.sacred_ready = True
        return self.expected()
