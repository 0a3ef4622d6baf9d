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
