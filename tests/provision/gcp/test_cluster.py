"""The GKE cluster in odd states: being deleted or broken when setup starts, never running,
failing while created, already being deleted when teardown starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.gcp.fakes import FakeCloud, FakeKube
from tests.provision.gcp.helpers import LOC, run_setup, run_teardown
from vertex_edge.errors import CloudError
from vertex_edge.provision.engine import Action, Check
from vertex_edge.provision.gcp.cluster import ClusterStep

CLUSTER = f"{LOC}/clusters/edge-cluster"


@pytest.mark.parametrize(
    ("status", "says"),
    [("STOPPING", "is being deleted: wait until it is gone"), ("ERROR", "is in state ERROR")],
)
def test_a_cluster_being_deleted_or_broken_stops_setup_before_any_change(
    make_env: Any, cloud: FakeCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: str, says: str
) -> None:
    cloud.enabled_apis = {"container.googleapis.com"}
    cloud.clusters[CLUSTER] = {"status": status, "polls": 0}

    with pytest.raises(CloudError) as err:
        run_setup(make_env(), tmp_path, monkeypatch)

    assert "cannot go on, nothing was changed" in err.value.message and says in err.value.message
    assert cloud.mutations() == []


def test_a_cluster_that_never_runs_times_out_with_a_resume_hint(make_env: Any, cloud: FakeCloud) -> None:
    cloud.clusters[CLUSTER] = {"status": "PROVISIONING", "polls": 0}
    cloud.polls_until_running = 10_000
    env = make_env()
    env.cluster_timeout = 60.0
    step = ClusterStep(env)

    check = step.check()
    assert check.action is Action.UPDATE and "PROVISIONING" in check.detail
    with pytest.raises(CloudError) as err:
        step.apply(check)
    assert "still PROVISIONING" in err.value.message and "again to keep waiting" in (err.value.hint or "")
    assert "container.create_cluster" not in cloud.names()


def test_a_cluster_that_fails_while_being_created_is_reported(make_env: Any, cloud: FakeCloud) -> None:
    env = make_env()
    step = ClusterStep(env)
    step.apply(Check(Action.CREATE))  # created, then polled until RUNNING
    cloud.clusters[CLUSTER]["status"] = "ERROR"
    with pytest.raises(CloudError, match="GKE cluster edge-cluster is ERROR"):
        step.wait_until_running()


def test_teardown_of_a_cluster_already_being_deleted_waits_for_it(
    make_env: Any, cloud: FakeCloud, kube: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud.clusters[CLUSTER] = {"status": "STOPPING", "polls": 0}
    cloud.polls_until_deleted = 3
    out = run_teardown(make_env(), tmp_path, monkeypatch)
    assert "already being deleted" in out and "cluster is STOPPING" in out
    assert "container.delete_cluster" not in cloud.names() and not cloud.clusters
