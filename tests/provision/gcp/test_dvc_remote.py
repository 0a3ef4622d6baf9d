"""The gcp target's DVC remote: repointed when it points elsewhere; dvc init when there is no DVC yet."""

from __future__ import annotations

from typing import Any

from tests.gcp.fakes import FakeCloud, FakeDvc
from vertex_edge.provision.engine import Action
from vertex_edge.provision.gcp.dvc_remote import DvcRemoteStep


def test_dvc_remote_pointing_elsewhere_is_repointed(make_env: Any, fake_dvc: FakeDvc) -> None:
    fake_dvc.config["project"] = {"remote.edge-gcs.url": "gs://old/dvcstore", "core.remote": "edge-gcs"}
    step = DvcRemoteStep(make_env())
    check = step.check()
    assert check.action is Action.UPDATE and "gs://old/dvcstore -> gs://demo-project-1-edge/dvcstore" in check.detail
    step.apply(check)
    assert fake_dvc.config["project"]["remote.edge-gcs.url"] == "gs://demo-project-1-edge/dvcstore"


def test_dvc_init_when_the_repo_has_no_dvc_yet(make_env: Any, cloud: FakeCloud, fake_dvc: FakeDvc) -> None:
    fake_dvc.initialised = False
    step = DvcRemoteStep(make_env())
    check = step.check()
    assert check.action is Action.CREATE and check.detail.startswith("dvc init;")
    step.apply(check)
    assert cloud.names(mutating=True) == ["dvc.init", "dvc.set_remote"]
