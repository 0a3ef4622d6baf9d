"""``setup --target gcp`` against fake clients: the exact calls for a fresh project, a
provisioned one, a partial failure then a re-run, a dry run, and an unreachable Google."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from rich.console import Console

from tests.gcp.conftest import PASSWORD, gcp_config
from tests.gcp.fakes import PROJECT, REGION, FakeCloud, FakeDvc, FakeKube
from tests.provision.gcp.helpers import BUCKET, LOC, run_setup
from vertex_edge.cli import setup_gcp
from vertex_edge.cli.context import AppContext
from vertex_edge.config import EdgeConfig
from vertex_edge.errors import CloudError, LockHeldError
from vertex_edge.gcp.names import REQUIRED_APIS
from vertex_edge.provision.engine import Action

LABELS = {"managed-by": "vertex-edge"}


def mutations(cloud: FakeCloud) -> list[tuple[str, str, dict[str, Any]]]:
    return [(c.client, c.method, c.kwargs) for c in cloud.mutations()]


def test_fresh_project_creates_everything_in_order_with_exact_arguments(
    make_env: Any, cloud: FakeCloud, kube: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = run_setup(make_env(), tmp_path, monkeypatch)

    calls = mutations(cloud)
    assert [f"{c}.{m}" for c, m, _ in calls] == [
        "service_usage.batch_enable_services",
        "storage.create_bucket",
        "storage.upload",  # the lock: create-if-absent
        "dvc.set_remote",
        "artifact_registry.create_repository",
        "container.create_cluster",
        "secret_manager.create_secret",  # root
        "secret_manager.add_secret_version",
        "secret_manager.create_secret",  # the Sacred writer
        "secret_manager.add_secret_version",
        "secret_manager.create_secret",  # Omniboard's reader
        "secret_manager.add_secret_version",
        "kubectl.apply",
        "helm.upgrade",
        "mongo.createRole",  # as root, through a port-forward
        "mongo.createUser",
        "mongo.createUser",
        "kubectl.rollout",  # Omniboard restarted with its user
        "endpoints.create_endpoint",
        "storage.upload",  # the state
        "storage.delete_blob",  # the lock, released
    ]
    by_name: dict[str, Any] = {}
    for c, m, kw in calls:
        by_name.setdefault(f"{c}.{m}", kw)  # the first of each (root's secret before the others)
    assert by_name["service_usage.batch_enable_services"] == {
        "request": {"parent": f"projects/{PROJECT}", "service_ids": sorted(REQUIRED_APIS)}
    }
    assert by_name["storage.create_bucket"] == {
        "name": BUCKET, "project": PROJECT, "location": REGION, "versioning": True, "ubla": True,
        "public_access_prevention": "enforced", "labels": LABELS,
    }  # fmt: skip
    assert calls[2][2] == {"name": ".edge/state.lock", "if_generation_match": 0, "content_type": "application/yaml"}
    assert by_name["dvc.set_remote"] == {
        "name": "edge-gcs", "url": f"gs://{BUCKET}/dvcstore", "level": "project", "default": True
    }
    assert by_name["artifact_registry.create_repository"] == {
        "request": {
            "parent": LOC,
            "repository_id": "edge",
            "repository": {
                "format_": "DOCKER",
                "description": "vertex-edge images: prediction, training, web app",
                "labels": LABELS,
            },
        }
    }  # fmt: skip
    assert by_name["container.create_cluster"] == {
        "request": {
            "parent": LOC,
            "cluster": {
                "name": "edge-cluster",
                "autopilot": {"enabled": True},
                "release_channel": {"channel": "REGULAR"},
                "ip_allocation_policy": {"use_ip_aliases": True},
                "resource_labels": LABELS,
            },
        }
    }
    assert by_name["secret_manager.create_secret"] == {
        "request": {
            "parent": f"projects/{PROJECT}",
            "secret_id": "edge-cluster-mongodb-password",
            "secret": {"replication": {"user_managed": {"replicas": [{"location": REGION}]}}, "labels": LABELS},
        }
    }
    version = by_name["secret_manager.add_secret_version"]["request"]
    assert version["parent"] == f"projects/{PROJECT}/secrets/edge-cluster-mongodb-password"
    assert version["payload"]["data"] == PASSWORD.encode()
    assert isinstance(version["payload"]["data_crc32c"], int)
    assert by_name["kubectl.apply"] == {"argv": ["apply", "-f", "-"]}
    assert by_name["helm.upgrade"]["argv"] == [
        "upgrade", "--install", "sacred", str(Path(setup_gcp.__file__).parents[2] / "helm" / "sacred"),
        "--namespace", "sacred", "--create-namespace", "--wait", "--timeout", "10m", "--values", "-",
    ]  # fmt: skip
    assert by_name["endpoints.create_endpoint"] == {
        "request": {
            "parent": LOC,
            "endpoint": {
                "display_name": "fashion-mnist-endpoint", "description": "vertex-edge model endpoint", "labels": LABELS,
            },
        }
    }  # fmt: skip
    assert calls[-2][2]["name"] == ".edge/state.yaml" and calls[-2][2]["if_generation_match"] == 0
    assert calls[-1][2]["name"] == ".edge/state.lock" and calls[-1][2]["if_generation_match"] > 0
    secret_ids = [kw["request"]["secret_id"] for c, m, kw in calls if m == "create_secret"]
    assert secret_ids == [f"edge-cluster-mongodb{s}-password" for s in ("", "-writer", "-reader")]
    stored = [kw["request"]["payload"]["data"] for c, m, kw in calls if m == "add_secret_version"]
    assert len(set(stored)) == 3  # three passwords, one per user
    users = [(kw["value"], kw["roles"], kw["as"]) for c, m, kw in calls if m == "createUser"]
    assert users == [("sacred-writer", [{"role": "readWrite", "db": "sacred"}], "sacred"),
                     ("omniboard", [{"role": "omniboardReader", "db": "admin"}], "sacred")]  # fmt: skip
    assert cloud.mongo.users["sacred-writer"]["pwd"] == stored[1].decode()
    assert cloud.mongo.users["omniboard"]["pwd"] == stored[2].decode()
    assert kube.rollouts == [["restart", "deployment/sacred-omniboard"], ["status", "deployment/sacred-omniboard"]]

    # what the cluster got through stdin: the namespace and the Secret copied from Secret Manager
    import base64
    import json

    applied = json.loads(kube.stdin[[a[:2] for a in kube.argv].index(["kubectl", "apply"])])
    secret, reader = applied["items"][1:]
    assert secret["metadata"] == {
        "name": "sacred-mongodb-auth", "namespace": "sacred",
        "labels": {"app.kubernetes.io/managed-by": "vertex-edge", "app.kubernetes.io/part-of": "sacred"},
    }  # fmt: skip
    assert base64.b64decode(secret["data"]["mongodb-password"]).decode() == PASSWORD
    assert reader["metadata"]["name"] == "sacred-mongodb-reader"
    assert base64.b64decode(reader["data"]["mongodb-username"]).decode() == "omniboard"
    assert base64.b64decode(reader["data"]["mongodb-password"]) == stored[2]  # the writer's stays out of the cluster
    helm_values = json.loads(kube.stdin[[a[:2] for a in kube.argv].index(["helm", "upgrade"])])
    assert helm_values == {"auth": {"existingSecret": "sacred-mongodb-auth", "reader": {"existingSecret": "sacred-mongodb-reader"}},
                           "mongodb": {"database": "sacred"}}  # fmt: skip

    # the state records what exists, with the service names
    import yaml

    state = yaml.safe_load(cloud.buckets[BUCKET].objects[".edge/state.yaml"][0])
    assert state["target"] == "gcp"
    assert list(state["resources"]) == [
        "apis", "bucket", "dvc_remote", "artifact_registry", "cluster", "mongodb_password",
        "mongodb_writer_password", "mongodb_reader_password", "mongodb_k8s_secret", "sacred", "mongodb_users",
        "endpoint",
    ]  # fmt: skip
    assert state["resources"]["sacred"]["details"]["omniboard_service"] == "sacred-omniboard"
    assert state["resources"]["sacred"]["details"]["mongodb_service"] == "sacred-mongodb"
    assert state["resources"]["endpoint"]["location"] == f"{LOC}/endpoints/900"
    assert ".edge/state.lock" not in cloud.buckets[BUCKET].objects
    assert "gcp target ready" in out


def test_everything_present_makes_no_change_but_the_lock(
    make_env: Any, cloud: FakeCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_setup(make_env(), tmp_path, monkeypatch)
    cloud.calls.clear()

    out = run_setup(make_env(), tmp_path, monkeypatch)

    assert [f"{c}.{m}" for c, m, _ in mutations(cloud)] == ["storage.upload", "storage.delete_blob"]  # lock only
    assert "nothing to do" in out
    for title in ("Google Cloud APIs", "GCS bucket", "GKE Autopilot cluster", "Vertex AI endpoint", "state file"):
        assert f"{title}" in out and "already present" in out
    assert "created" not in out


def test_already_provisioned_by_someone_else_only_writes_the_state(
    make_env: Any, cloud: FakeCloud, kube: FakeKube, fake_dvc: FakeDvc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud.provision_everything(kube, password=PASSWORD)
    fake_dvc.config["project"] = {"remote.edge-gcs.url": f"gs://{BUCKET}/dvcstore", "core.remote": "edge-gcs"}

    run_setup(make_env(), tmp_path, monkeypatch)

    assert [f"{c}.{m}" for c, m, _ in mutations(cloud)] == ["storage.upload", "storage.upload", "storage.delete_blob"]
    assert not [c for c in cloud.calls if c.method in ("access_secret_version",) and c.mutating]


def test_partial_failure_then_rerun_resumes_without_recreating(
    make_env: Any, cloud: FakeCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud.fail["container.create_cluster"] = gexc.InternalServerError("backend error")

    with pytest.raises(CloudError) as err:
        run_setup(make_env(), tmp_path, monkeypatch)

    assert "GKE Autopilot cluster" in err.value.message and "backend error" in err.value.message
    assert ".edge/state.lock" not in cloud.buckets[BUCKET].objects  # the lock was released
    assert ".edge/state.yaml" not in cloud.buckets[BUCKET].objects
    cloud.calls.clear()

    run_setup(make_env(), tmp_path, monkeypatch)

    assert [f"{c}.{m}" for c, m, _ in mutations(cloud)] == [
        "storage.upload",
        "container.create_cluster",
        *["secret_manager.create_secret", "secret_manager.add_secret_version"] * 3,
        "kubectl.apply",
        "helm.upgrade",
        "mongo.createRole",
        "mongo.createUser",
        "mongo.createUser",
        "kubectl.rollout",
        "endpoints.create_endpoint",
        "storage.upload",
        "storage.delete_blob",
    ]


def test_interrupted_cluster_creation_resumes_by_waiting(
    make_env: Any, cloud: FakeCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud.polls_until_running = 3
    env = make_env()

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    env.sleep = interrupt
    with pytest.raises(KeyboardInterrupt):
        run_setup(env, tmp_path, monkeypatch)
    assert ".edge/state.lock" not in cloud.buckets[BUCKET].objects
    cloud.calls.clear()

    out = run_setup(make_env(), tmp_path, monkeypatch)

    names = [f"{c}.{m}" for c, m, _ in mutations(cloud)]
    assert "container.create_cluster" not in names  # the cluster GCP kept creating is waited for
    assert names[:2] == ["storage.upload", "secret_manager.create_secret"]
    assert "GKE Autopilot cluster" in out and "updated" in out


def test_dry_run_makes_no_mutating_call(
    make_env: Any, cloud: FakeCloud, kube: FakeKube, fake_dvc: FakeDvc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = run_setup(make_env(), tmp_path, monkeypatch, dry_run=True, config_action=Action.CREATE)

    assert cloud.mutations() == []
    assert not (tmp_path / "edge.yaml").exists()
    assert all(a[1] not in ("apply", "upgrade", "delete", "patch") for a in kube.argv)
    for title in (
        "Google Cloud APIs", "GCS bucket", "DVC default remote", "Artifact Registry repository",
        "GKE Autopilot cluster", "MongoDB password", "MongoDB writer password", "MongoDB reader password",
        "Kubernetes Secrets (MongoDB)", "Sacred on GKE (helm)", "MongoDB users (least privilege)",
        "Vertex AI endpoint", "state file",
    ):  # fmt: skip
        line = next(line for line in out.splitlines() if title in line and "create" in line)
        assert "will create" in line, line
    assert "(after enabling artifactregistry.googleapis.com)" in out
    assert "once the cluster runs" in out
    assert "dry run: nothing was changed" in out


def test_dry_run_on_a_provisioned_project_reports_every_resource_as_present(
    make_env: Any, cloud: FakeCloud, kube: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_setup(make_env(), tmp_path, monkeypatch)
    cloud.calls.clear()

    out = run_setup(make_env(), tmp_path, monkeypatch, dry_run=True)

    assert cloud.mutations() == []
    plan = out.split("Plan for target")[1]
    assert "will create" not in plan and "will update" not in plan and "not checked" not in plan
    assert plan.count("exists, keep") == 14  # edge.yaml + 13 steps


def test_unreachable_google_marks_everything_not_checked_and_says_why_once(
    make_env: Any, cloud: FakeCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.auth.exceptions import TransportError

    env = make_env()

    class Offline:
        token = None

        def refresh(self, request: Any) -> None:
            raise TransportError("Failed to resolve 'oauth2.googleapis.com'")

    env.gcp.credentials = Offline()

    out = run_setup(env, tmp_path, monkeypatch, dry_run=True)

    assert [c for c in cloud.calls if c.client != "dvc"] == []  # no Google call was even tried
    assert out.count("oauth2.googleapis.com") == 1
    plan = out.split("Plan for target")[1]
    assert plan.count("not checked") == 12 + 1  # every cloud step, then the line that points at the reason
    assert "will create" in plan  # the DVC remote is local: still checked


def test_unreachable_mid_plan_stops_calling_and_fails_clearly_without_dry_run(
    make_env: Any, cloud: FakeCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud.fail["service_usage.batch_get_services"] = gexc.ServiceUnavailable("DNS resolution failed")

    with pytest.raises(CloudError) as err:
        run_setup(make_env(), tmp_path, monkeypatch)

    assert "cannot reach Google Cloud" in err.value.message and "nothing was changed" in err.value.message
    google_calls = [n for n in cloud.names() if not n.startswith("dvc.")]
    assert google_calls[-1] == "service_usage.batch_get_services"  # nothing called after it
    assert cloud.mutations() == []


def test_billing_disabled_fails_the_prechecks_with_a_hint(
    make_env: Any, cloud: FakeCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud.billing_enabled = False

    with pytest.raises(CloudError) as err:
        run_setup(make_env(), tmp_path, monkeypatch)

    assert "billing is not enabled" in err.value.message
    assert "console.cloud.google.com/billing" in (err.value.hint or "")
    assert cloud.mutations() == []


def test_unsupported_region_and_missing_helm_fail_the_prechecks(
    make_env: Any, cloud: FakeCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = EdgeConfig(target="gcp", gcp={"project": PROJECT, "region": "mars-north1"})
    env = make_env(config)
    out = io.StringIO()
    app_ctx = AppContext(repo=tmp_path, config_path=tmp_path / "edge.yaml", console=Console(file=out, width=200))
    monkeypatch.setattr(setup_gcp, "make_env", lambda *a, **k: env)
    monkeypatch.setattr("vertex_edge.proc.which", lambda tool: None if tool == "helm" else f"/usr/bin/{tool}")

    with pytest.raises(CloudError) as err:
        setup_gcp.run(app_ctx, config, config_action=Action.KEEP, yes=True, dry_run=False)

    assert "region mars-north1: Vertex AI does not serve endpoints in this region" in err.value.message
    assert "helm: not found on PATH" in err.value.message
    assert "helm.sh" in out.getvalue()
    assert cloud.mutations() == []


def test_tracking_off_needs_no_cluster_and_no_kubectl(
    make_env: Any, cloud: FakeCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = gcp_config(enabled=False)
    monkeypatch.setattr("vertex_edge.proc.which", lambda tool: None)  # neither kubectl nor helm

    out = run_setup(make_env(config), tmp_path, monkeypatch, config=config)

    names = [f"{c}.{m}" for c, m, _ in mutations(cloud)]
    assert "container.create_cluster" not in names and "helm.upgrade" not in names
    assert "kubectl" not in out.split("Plan for target")[0]
    assert "endpoints.create_endpoint" in names


def test_bucket_without_versioning_is_updated(
    make_env: Any, cloud: FakeCloud, kube: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_setup(make_env(), tmp_path, monkeypatch)
    cloud.buckets[BUCKET].versioning_enabled = False
    cloud.calls.clear()

    out = run_setup(make_env(), tmp_path, monkeypatch)

    assert ("storage", "patch_bucket", {"name": BUCKET, "versioning": True, "ubla": True}) in mutations(cloud)
    assert "GCS bucket" in out and "updated" in out


def test_local_default_remote_is_unset_so_the_gcs_remote_wins(
    make_env: Any, cloud: FakeCloud, fake_dvc: FakeDvc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dvc.config["local"] = {"remote.edge-local.url": "/x", "core.remote": "edge-local"}

    run_setup(make_env(), tmp_path, monkeypatch)

    assert ("dvc", "dvc", {"args": ["remote", "default", "--local", "--unset"]}) in mutations(cloud)
    assert fake_dvc.config["project"]["core.remote"] == "edge-gcs"
    assert "core.remote" not in fake_dvc.config["local"]


def test_a_held_lock_fails_at_once_with_who_holds_it(
    make_env: Any, cloud: FakeCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_setup(make_env(), tmp_path, monkeypatch)
    lock = b"user: alice\nhost: ci-runner-7\npid: 4242\ncommand: edge.py setup\nsince: '2026-11-22T10:00:00+00:00'\n"
    cloud.buckets[BUCKET].objects[".edge/state.lock"] = (lock, 5)
    cloud.calls.clear()

    with pytest.raises(LockHeldError) as err:
        run_setup(make_env(), tmp_path, monkeypatch)

    assert "alice@ci-runner-7 (pid 4242" in err.value.message
    assert [f"{c}.{m}" for c, m, _ in mutations(cloud)] == ["storage.upload"]  # the failed create-if-absent
    assert cloud.buckets[BUCKET].objects[".edge/state.lock"][0] == lock  # not removed


def test_every_request_is_a_valid_google_api_request(
    make_env: Any, cloud: FakeCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dicts sent to the clients convert to the real request messages (unknown keys would raise)."""
    from google.cloud import (
        aiplatform_v1,
        artifactregistry_v1,
        billing_v1,
        container_v1,
        resourcemanager_v3,
        secretmanager_v1,
        service_usage_v1,
    )

    types = {
        "service_usage.batch_get_services": service_usage_v1.BatchGetServicesRequest,
        "service_usage.batch_enable_services": service_usage_v1.BatchEnableServicesRequest,
        "artifact_registry.get_repository": artifactregistry_v1.GetRepositoryRequest,
        "artifact_registry.create_repository": artifactregistry_v1.CreateRepositoryRequest,
        "container.get_cluster": container_v1.GetClusterRequest,
        "container.create_cluster": container_v1.CreateClusterRequest,
        "secret_manager.get_secret": secretmanager_v1.GetSecretRequest,
        "secret_manager.list_secret_versions": secretmanager_v1.ListSecretVersionsRequest,
        "secret_manager.create_secret": secretmanager_v1.CreateSecretRequest,
        "secret_manager.add_secret_version": secretmanager_v1.AddSecretVersionRequest,
        "secret_manager.access_secret_version": secretmanager_v1.AccessSecretVersionRequest,
        "projects.get_project": resourcemanager_v3.GetProjectRequest,
        "billing.get_project_billing_info": billing_v1.GetProjectBillingInfoRequest,
        "endpoints.list_endpoints": aiplatform_v1.ListEndpointsRequest,
        "endpoints.create_endpoint": aiplatform_v1.CreateEndpointRequest,
    }
    run_setup(make_env(), tmp_path, monkeypatch)
    run_setup(make_env(), tmp_path, monkeypatch)  # the checks of a provisioned project too

    seen = set()
    for call in cloud.calls:
        key = f"{call.client}.{call.method}"
        if "request" in call.kwargs:
            assert key in types, key
            types[key](call.kwargs["request"])
            seen.add(key)
    assert seen == set(types)
