"""The DVC default remote of the gcp target, in the *project* config (``.dvc/config``,
committed), so every clone and CI push to and pull from the same bucket. A default set in
``.dvc/config.local`` (by the local target) would override it, so it is unset. Teardown
removes it with the bucket it points to (``--delete-data``). A local step: it is checked
even when Google cannot be reached."""

from __future__ import annotations

from vertex_edge.gcp.names import DVC_REMOTE_NAME
from vertex_edge.provision.engine import Action, Check
from vertex_edge.provision.gcp.resource import Finding, GcpStep, TeardownItem, Verdict
from vertex_edge.state import Resource

LEVEL = "project"


class DvcRemoteStep(GcpStep):
    key = "dvc_remote"
    title = "DVC default remote"
    cloud = False

    def expected(self) -> Resource:
        return Resource(
            kind="dvc-remote", name=DVC_REMOTE_NAME, location=self.names.dvc_url, details={"config": ".dvc/config"}
        )

    def describe(self) -> str:
        return f"{DVC_REMOTE_NAME} -> {self.names.dvc_url}"

    def _check(self) -> Check:
        dvc, repo = self.env.dvc, self.env.repo
        if not dvc.is_initialised(repo):
            return Check(Action.CREATE, f"dvc init; {self.describe()}")
        current = dvc.remote_url(repo, DVC_REMOTE_NAME, level=LEVEL)
        if current is None:
            return Check(Action.CREATE, self.describe())
        default = dvc.default_remote(repo, level=LEVEL)
        local_default = dvc.default_remote(repo, level="local")
        if current != self.names.dvc_url or default != DVC_REMOTE_NAME:
            return Check(Action.UPDATE, f"{DVC_REMOTE_NAME}: {current} -> {self.names.dvc_url}")
        if local_default not in (None, DVC_REMOTE_NAME):
            return Check(Action.UPDATE, f"unset the local default remote {local_default!r} (it overrides this one)")
        return Check(Action.KEEP, self.describe(), self.expected())

    def _apply(self, check: Check) -> Resource:
        dvc, repo = self.env.dvc, self.env.repo
        if not dvc.is_initialised(repo):
            dvc.init(repo)
        dvc.set_remote(repo, DVC_REMOTE_NAME, self.names.dvc_url, level=LEVEL, default=True)
        if dvc.default_remote(repo, level="local") not in (None, DVC_REMOTE_NAME):
            dvc.dvc(repo, "remote", "default", "--local", "--unset")
        return self.expected()


class DvcRemoteItem(TeardownItem):
    """The DVC remote goes with the bucket it points to."""

    key = "dvc_remote"
    title = "DVC default remote"
    removes = ("dvc_remote",)
    cloud = False

    def describe(self) -> str:
        return DVC_REMOTE_NAME

    def _check(self) -> Finding:
        dvc, repo = self.env.dvc, self.env.repo
        if not dvc.is_initialised(repo) or dvc.remote_url(repo, DVC_REMOTE_NAME, level=LEVEL) is None:
            return Finding(Verdict.ABSENT, DVC_REMOTE_NAME)
        return self._keep_or_delete(f"{DVC_REMOTE_NAME} in .dvc/config", "")

    def _delete(self, finding: Finding) -> None:
        self.env.dvc.dvc(self.env.repo, "remote", "remove", "--project", DVC_REMOTE_NAME)
