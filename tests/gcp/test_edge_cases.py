"""What setup and teardown say when resources are in odd states: clusters being deleted or
broken, names taken, wrong kinds, inaccessible projects, slow operations."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from rich.console import Console

from tests.gcp.fakes import PROJECT, REGION, FakeCloud, FakeDvc, FakeKube
from tests.gcp.test_steps import run_setup
from vertex_edge.errors import CloudError
from vertex_edge.gcp.preflight import Status, run_prechecks
from vertex_edge.gcp.steps import ArtifactRepositoryStep, BucketStep, ClusterStep, DvcRemoteStep
from vertex_edge.provision.engine import Action, Check

LOC = f"projects/{PROJECT}/locations/{REGION}"
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
        step._wait_running()


def test_bucket_name_taken_by_someone_else(make_env: Any, cloud: FakeCloud) -> None:
    cloud.enabled_apis = {"storage.googleapis.com"}
    cloud.fail["storage.lookup_bucket"] = gexc.Forbidden("no access")
    check = BucketStep(make_env()).check()
    assert check.action is Action.UNKNOWN
    assert "exists but you cannot access it" in check.detail


def test_bucket_created_meanwhile_by_another_run_is_fine(make_env: Any, cloud: FakeCloud) -> None:
    from tests.gcp.fakes import FakeBucket

    env = make_env()
    step = BucketStep(env)
    other = FakeBucket(cloud, f"{PROJECT}-edge")  # appears between check and create
    cloud.buckets[other.name] = other
    step.apply(Check(Action.CREATE))
    assert cloud.buckets[other.name].versioning_enabled  # and it got our settings
    assert "storage.patch_bucket" in cloud.names()


def test_artifact_repository_of_another_format_is_not_touched(make_env: Any, cloud: FakeCloud) -> None:
    cloud.enabled_apis = {"artifactregistry.googleapis.com"}
    cloud.repositories[f"{LOC}/repositories/edge"] = "PYTHON"
    check = ArtifactRepositoryStep(make_env()).check()
    assert check.action is Action.UNKNOWN and "is a PYTHON repository, not Docker" in check.detail


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


def test_prechecks_for_an_inaccessible_or_deleted_project(make_env: Any, cloud: FakeCloud) -> None:
    env = make_env()
    env.names = env.names.__class__(**{**env.names.__dict__, "project": "someone-elses-1"})
    checks = {c.name: c for c in run_prechecks(env, need_tools=False)}
    assert checks["project someone-elses-1"].status is Status.FAILED
    assert "does not exist or you cannot access it" in checks["project someone-elses-1"].detail

    cloud.project_state = "DELETE_REQUESTED"
    checks = {c.name: c for c in run_prechecks(make_env(), need_tools=False)}
    assert checks[f"project {PROJECT}"].status is Status.FAILED and "DELETE_REQUESTED" in checks[f"project {PROJECT}"].detail


def test_prechecks_that_cannot_be_verified_are_warnings(make_env: Any, cloud: FakeCloud) -> None:
    cloud.fail["projects.get_project"] = gexc.PermissionDenied(
        "Cloud Resource Manager API has not been used in project 1 before or it is disabled"
    )
    cloud.fail["billing.get_project_billing_info"] = gexc.PermissionDenied("billing.resourceAssociations.list")
    checks = {c.name: c for c in run_prechecks(make_env(), need_tools=False)}
    assert checks[f"project {PROJECT}"].status is Status.WARNING
    assert checks["billing"].status is Status.WARNING and "permission denied" in checks["billing"].detail


def test_spinner_on_a_terminal_and_progress_lines_off_it() -> None:
    from vertex_edge.cli.setup_gcp import StepSpinner

    terminal = io.StringIO()
    spinner = StepSpinner(Console(file=terminal, force_terminal=True, width=100))
    spinner.start("GKE Autopilot cluster")
    spinner.update("cluster edge-cluster is PROVISIONING")
    spinner.stop()

    plain = io.StringIO()
    spinner = StepSpinner(Console(file=plain, width=100), interval=0.0)
    spinner.start("GKE Autopilot cluster")
    spinner.update("cluster edge-cluster is PROVISIONING")
    spinner.stop()
    assert "... GKE Autopilot cluster: cluster edge-cluster is PROVISIONING (0 min)" in plain.getvalue()


def test_teardown_of_a_cluster_already_being_deleted_waits_for_it(
    make_env: Any, cloud: FakeCloud, kube: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.gcp.test_teardown import run_teardown

    cloud.clusters[CLUSTER] = {"status": "STOPPING", "polls": 0}
    cloud.polls_until_deleted = 3
    out = run_teardown(make_env(), tmp_path, monkeypatch)
    assert "already being deleted" in out and "cluster is STOPPING" in out
    assert "container.delete_cluster" not in cloud.names() and not cloud.clusters


def test_a_lost_secret_manager_password_is_restored_from_the_cluster(
    make_env: Any, cloud: FakeCloud, kube: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MongoDB keeps the password it was initialised with: setup must not invent a new one."""
    cloud.provision_everything(kube, password="the-original-password")
    del cloud.secrets[f"projects/{PROJECT}/secrets/edge-cluster-mongodb-password"]

    out = run_setup(make_env(), tmp_path, monkeypatch, dry_run=True)
    assert "compared once Secret Manager holds the password" in out
    run_setup(make_env(), tmp_path, monkeypatch)

    versions = cloud.secrets[f"projects/{PROJECT}/secrets/edge-cluster-mongodb-password"]
    assert versions == [b"the-original-password"]
    assert "kubectl.apply" not in cloud.names(mutating=True)  # the cluster's Secret was already right
