"""The MongoDB password: a password lost from Secret Manager is restored from the cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.gcp.fakes import PROJECT, FakeCloud, FakeKube
from tests.provision.gcp.helpers import run_setup


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


# ---------------------------------------------------------------- least-privilege users


def mongo_commands(cloud: FakeCloud) -> list[tuple[str, object, str]]:
    return [(c.method, c.kwargs["value"], c.kwargs["as"]) for c in cloud.calls if c.client == "mongo"]


def test_root_only_creates_the_users_they_log_in_as_themselves(
    make_env: Any, cloud: FakeCloud, kube: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_setup(make_env(), tmp_path, monkeypatch)
    run_setup(make_env(), tmp_path, monkeypatch)  # the second one checks each user by logging in as it
    commands = mongo_commands(cloud)
    management = {who for name, _, who in commands if name != "ping"}
    assert management == {"sacred"}  # root: usersInfo/rolesInfo/create*, nothing else
    assert {who for name, _, who in commands if name == "ping"} == {"sacred-writer", "omniboard"}
    assert cloud.mongo.roles["omniboardReader"]["roles"] == [{"role": "read", "db": "sacred"}]
    written = {p["resource"]["collection"] for p in cloud.mongo.roles["omniboardReader"]["privileges"]}
    assert written == {"omniboard.settings", "omniboard.columns", "omniboard.config.columns",
                       "omniboard.custom.columns", "omniboard.metric.columns"}  # fmt: skip
    assert all("runs" not in c and "metrics" not in c for c in written)  # Omniboard cannot change a run


def test_a_drifted_user_is_put_back_and_omniboard_restarted(
    make_env: Any, cloud: FakeCloud, kube: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud.provision_everything(kube, password="root-pw")
    cloud.mongo.users["sacred-writer"]["pwd"] = "changed by hand"
    cloud.mongo.users["omniboard"]["roles"] = [{"role": "root", "db": "admin"}]

    out = run_setup(make_env(), tmp_path, monkeypatch, dry_run=True)
    assert "will update   MongoDB users (least privilege)  user sacred-writer: password differs from Secret Manager; " \
           "user omniboard: roles differ" in out  # fmt: skip
    assert cloud.mutations() == []
    cloud.calls.clear()
    run_setup(make_env(), tmp_path, monkeypatch)

    assert [m for m, _, _ in mongo_commands(cloud) if m.startswith(("create", "update"))] == [
        "updateRole", "updateUser", "updateUser"]  # fmt: skip
    assert cloud.mongo.users["sacred-writer"] == {"pwd": "writer-pw", "roles": [{"role": "readWrite", "db": "sacred"}]}
    assert cloud.mongo.users["omniboard"]["roles"] == [{"role": "omniboardReader", "db": "admin"}]
    assert ["restart", "deployment/sacred-omniboard"] in kube.rollouts
    cloud.calls.clear()
    out = run_setup(make_env(), tmp_path, monkeypatch)  # converged: nothing more
    assert not [c for c in cloud.mutations() if c.client in ("mongo", "kubectl", "helm")]


def test_a_lost_writer_password_is_new_and_root_resets_the_user(
    make_env: Any, cloud: FakeCloud, kube: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud.provision_everything(kube, password="root-pw")
    del cloud.secrets[f"projects/{PROJECT}/secrets/edge-cluster-mongodb-writer-password"]
    run_setup(make_env(), tmp_path, monkeypatch)

    (new,) = cloud.secrets[f"projects/{PROJECT}/secrets/edge-cluster-mongodb-writer-password"]
    assert new.decode() != "writer-pw" and cloud.mongo.users["sacred-writer"]["pwd"] == new.decode()
    assert cloud.secrets[f"projects/{PROJECT}/secrets/edge-cluster-mongodb-password"] == [b"root-pw"]  # root untouched
    assert cloud.mongo.root == ("sacred", "root-pw")


def test_an_install_from_before_the_users_is_upgraded(
    make_env: Any, cloud: FakeCloud, kube: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root only (Omniboard on the root user): setup adds the users, the reader's Secret, the new values."""
    cloud.provision_everything(kube, password="root-pw")
    for role in ("writer", "reader"):
        del cloud.secrets[f"projects/{PROJECT}/secrets/edge-cluster-mongodb-{role}-password"]
    del kube.secrets[("sacred", "sacred-mongodb-reader")]
    kube.releases[("sacred", "sacred")].update(chart="sacred-0.1.0", values={"auth": {"existingSecret": "sacred-mongodb-auth"},
                                                                             "mongodb": {"database": "sacred"}})  # fmt: skip
    cloud.mongo.users.clear()
    cloud.mongo.roles.clear()

    out = run_setup(make_env(), tmp_path, monkeypatch, dry_run=True)
    assert "will update   Kubernetes Secrets (MongoDB)  sacred/sacred-mongodb-reader: missing" in out
    assert "will update   Sacred on GKE (helm)  sacred: sacred-0.1.0 -> sacred-0.2.0" in out
    assert "will create   MongoDB users (least privilege)" in out and "(once Secret Manager holds the passwords)" in out
    run_setup(make_env(), tmp_path, monkeypatch)
    assert set(cloud.mongo.users) == {"sacred-writer", "omniboard"}
    assert ("sacred", "sacred-mongodb-reader") in kube.secrets
    assert kube.releases[("sacred", "sacred")]["values"]["auth"]["reader"] == {"existingSecret": "sacred-mongodb-reader"}


def test_mongodb_down_makes_the_users_not_checked_without_a_traceback(
    make_env: Any, cloud: FakeCloud, kube: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud.provision_everything(kube, password="root-pw")
    cloud.mongo.running = False
    out = run_setup(make_env(), tmp_path, monkeypatch, dry_run=True)
    line = next(line for line in out.splitlines() if "MongoDB users" in line)
    assert line.strip().startswith("not checked") and "Connection refused" in out
