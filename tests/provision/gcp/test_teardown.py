"""``edge.py teardown`` against fake clients: reverse order, data kept unless --delete-data,
what keeps costing money, dry run, state records removed."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from rich.console import Console

from tests.gcp.conftest import PASSWORD, gcp_config
from tests.gcp.fakes import FakeCloud, FakeDvc, FakeKube
from tests.provision.gcp.helpers import BUCKET, LOC, run_setup, run_teardown
from vertex_edge.cli import teardown as teardown_cli
from vertex_edge.cli.context import AppContext
from vertex_edge.errors import CloudError, UsageError
from vertex_edge.provision.gcp.env import GcpEnv

ENDPOINT = f"{LOC}/endpoints/900"


@pytest.fixture
def provisioned(
    make_env: Any, cloud: FakeCloud, kube: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> FakeCloud:
    run_setup(make_env(), tmp_path, monkeypatch)
    kube.argv.clear()
    cloud.endpoints[ENDPOINT].deployed_models = [SimpleNamespace(id="1"), SimpleNamespace(id="2")]
    cloud.buckets[BUCKET].objects["dvcstore/files/md5/ab/cdef"] = (b"data", 7)
    cloud.calls.clear()
    return cloud


def names(cloud: FakeCloud) -> list[str]:
    return [f"{c.client}.{c.method}" for c in cloud.mutations()]


def test_teardown_deletes_in_reverse_order_and_keeps_the_data(
    provisioned: FakeCloud, make_env: Any, kube: FakeKube, fake_dvc: FakeDvc, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    cloud = provisioned
    out = run_teardown(make_env(), tmp_path, monkeypatch)

    assert names(cloud) == [
        "storage.upload",  # lock
        "endpoints.undeploy_model",
        "endpoints.undeploy_model",
        "endpoints.delete_endpoint",
        "storage.upload",  # state: endpoint record removed
        "kubectl.patch",  # MongoDB volume set to Retain: the disk outlives the cluster
        "storage.upload",  # state: kept disk recorded
        "container.delete_cluster",
        "storage.upload",
        "artifact_registry.delete_repository",
        "storage.upload",
        "storage.delete_blob",  # lock released
    ]
    calls = [c.kwargs for c in cloud.mutations()]
    assert calls[1] == {"request": {"endpoint": ENDPOINT, "deployed_model_id": "1", "traffic_split": {"2": 100}}}
    assert calls[2] == {"request": {"endpoint": ENDPOINT, "deployed_model_id": "2"}}
    assert calls[3] == {"request": {"name": ENDPOINT}}
    assert calls[5]["argv"] == [
        "patch", "pv", "pvc-0001", "--type", "merge", "-p", '{"spec": {"persistentVolumeReclaimPolicy": "Retain"}}'
    ]  # fmt: skip
    assert calls[7] == {"request": {"name": f"{LOC}/clusters/edge-cluster"}}
    assert calls[9] == {"request": {"name": f"{LOC}/repositories/edge"}}
    assert not cloud.clusters and not cloud.endpoints and not cloud.repositories
    assert BUCKET in cloud.buckets and cloud.secrets  # data kept
    assert fake_dvc.config["project"]["core.remote"] == "edge-gcs"

    state = yaml.safe_load(cloud.buckets[BUCKET].objects[".edge/state.yaml"][0])
    assert sorted(state["resources"]) == ["apis", "bucket", "dvc_remote", "kept_gce-disk_pvc-0001", "mongodb_password",
                                          "mongodb_reader_password", "mongodb_writer_password"]  # fmt: skip
    assert state["resources"]["kept_gce-disk_pvc-0001"]["location"].endswith("/zones/us-central1-a/disks/pvc-0001")
    assert "Kept, and still billed" in out
    assert "bucket gs://demo-project-1-edge" in out and "Secret Manager" in out
    assert "gcloud compute disks delete pvc-0001 --zone us-central1-a --project demo-project-1" in out
    assert "APIs stay enabled" in out


def test_teardown_with_delete_data_removes_everything(
    provisioned: FakeCloud, make_env: Any, kube: FakeKube, fake_dvc: FakeDvc, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    cloud = provisioned
    out = run_teardown(make_env(), tmp_path, monkeypatch, delete_data=True)

    got = names(cloud)
    assert got[:4] == [
        "storage.upload", "endpoints.undeploy_model", "endpoints.undeploy_model", "endpoints.delete_endpoint"
    ]  # fmt: skip
    assert got.index("kubectl.delete") < got.index("container.delete_cluster")  # disks go before the cluster
    assert got.index("container.delete_cluster") < got.index("secret_manager.delete_secret")
    assert got.index("artifact_registry.delete_repository") < got.index("dvc.dvc") < got.index("storage.delete_bucket")
    assert got[-1] == "storage.delete_blob"  # the lock: already gone with the bucket
    assert ["kubectl", "delete", "namespace", "sacred", "--wait=true", "--timeout=10m"] in kube.argv
    assert ["kubectl", "wait", "--for=delete", "pv/pvc-0001", "--timeout=10m"] in kube.argv
    assert not cloud.buckets and not cloud.secrets and not cloud.clusters
    assert "remote.edge-gcs.url" not in fake_dvc.config["project"]
    assert "Kept, and still billed" not in out
    assert "teardown done" in out


def test_teardown_dry_run_changes_nothing(
    provisioned: FakeCloud, make_env: Any, kube: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = run_teardown(make_env(), tmp_path, monkeypatch, dry_run=True)

    assert provisioned.mutations() == []
    assert all(a[1] in ("get",) for a in kube.argv if a[0] == "kubectl")
    for line in (
        "will delete   Vertex AI endpoint",
        "keep          MongoDB volume (Sacred runs)",
        "will delete   GKE cluster",
        "keep          MongoDB password",
        "keep          MongoDB writer password",
        "keep          MongoDB reader password",
        "will delete   Artifact Registry repository",
        "keep          GCS bucket",
    ):
        assert line in out
    assert "dry run: nothing was changed" in out


def test_teardown_of_nothing_says_so(
    make_env: Any, cloud: FakeCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = run_teardown(make_env(), tmp_path, monkeypatch)

    assert cloud.mutations() == []
    assert "nothing to delete" in out
    assert out.count("absent") == 10


def test_teardown_is_resumable_after_a_failure(
    provisioned: FakeCloud, make_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.api_core import exceptions as gexc

    cloud = provisioned
    cloud.fail["artifact_registry.delete_repository"] = gexc.InternalServerError("try later")
    with pytest.raises(CloudError, match="Artifact Registry repository: .*try later"):
        run_teardown(make_env(), tmp_path, monkeypatch)
    assert ".edge/state.lock" not in cloud.buckets[BUCKET].objects
    cloud.calls.clear()

    run_teardown(make_env(), tmp_path, monkeypatch)

    # what was deleted before the failure is found absent; only the repository is left to delete
    assert names(cloud) == [
        "storage.upload", "artifact_registry.delete_repository", "storage.upload", "storage.delete_blob",
    ]  # fmt: skip


def test_teardown_refuses_the_local_target(tmp_path: Path) -> None:
    from vertex_edge.config import EdgeConfig

    app_ctx = AppContext(repo=tmp_path, config_path=tmp_path / "edge.yaml", console=Console(file=io.StringIO()))
    app_ctx.set_config(EdgeConfig())
    with pytest.raises(UsageError, match="local target"):
        teardown_cli.teardown(SimpleNamespace(obj=app_ctx), yes=True, dry_run=False, delete_data=False)


def test_teardown_without_credentials_is_not_checked_and_changes_nothing(
    cloud: FakeCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vertex_edge.gcp.names import GcpNames

    env = GcpEnv(names=GcpNames.from_config(gcp_config()), clients=None, repo=tmp_path, dvc=FakeDvc(cloud))
    env.gate.block("no Application Default Credentials", "run 'gcloud auth application-default login'")

    out = run_teardown(env, tmp_path, monkeypatch, dry_run=True)
    assert out.count("no Application Default Credentials") == 1
    assert out.count("not checked") == 9 + 1  # 9 cloud items + the reason line (the DVC remote is local)
    for line in (  # each named in full, though nothing could be checked
        f"not checked   Vertex AI endpoint  fashion-mnist-endpoint in {LOC}",
        "not checked   MongoDB volume (Sacred runs)  the volume(s) in namespace sacred of cluster edge-cluster",
        f"not checked   MongoDB disks kept earlier  disks recorded in gs://{BUCKET}/.edge/state.yaml",
        "not checked   GKE cluster  edge-cluster with MongoDB and Omniboard",
        "not checked   MongoDB password  edge-cluster-mongodb-password",
        "not checked   Artifact Registry repository  us-central1-docker.pkg.dev/demo-project-1/edge",
        f"not checked   GCS bucket  gs://{BUCKET}",
    ):
        assert line in out, out

    with pytest.raises(CloudError, match="nothing was changed"):
        run_teardown(env, tmp_path, monkeypatch)
    assert PASSWORD  # (imported for symmetry with the setup tests)


def test_a_kept_disk_stays_on_record_and_in_view(
    provisioned: FakeCloud, make_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud = provisioned
    run_teardown(make_env(), tmp_path, monkeypatch)
    run_setup(make_env(), tmp_path, monkeypatch)  # set up again: the record of the kept disk survives
    state = yaml.safe_load(cloud.buckets[BUCKET].objects[".edge/state.yaml"][0])
    assert "kept_gce-disk_pvc-0001" in state["resources"] and "cluster" in state["resources"]

    out = run_teardown(make_env(), tmp_path, monkeypatch, dry_run=True, delete_data=True)
    line = next(line for line in out.splitlines() if "MongoDB disks kept earlier" in line)
    assert line.strip().startswith("keep") and "pvc-0001 (not deleted by edge.py)" in line
    assert "gcloud compute disks delete pvc-0001 --zone us-central1-a --project demo-project-1" in out
