"""The bucket in odd states: its name taken by someone else, or created meanwhile by another run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from tests.gcp.fakes import PROJECT, FakeBucket, FakeCloud
from tests.provision.gcp.helpers import run_setup
from vertex_edge.provision.engine import Action, Check
from vertex_edge.provision.gcp.bucket import BucketStep


def test_bucket_name_taken_by_someone_else(make_env: Any, cloud: FakeCloud) -> None:
    cloud.enabled_apis = {"storage.googleapis.com"}
    cloud.fail["storage.lookup_bucket"] = gexc.Forbidden("no access")
    check = BucketStep(make_env()).check()
    assert check.action is Action.UNKNOWN and check.detail.startswith("gs://demo-project-1-edge in us-central1")
    assert "exists but you cannot access it" in check.why and "set gcp.bucket in edge.yaml" in check.why


def test_bucket_created_meanwhile_by_another_run_is_fine(make_env: Any, cloud: FakeCloud) -> None:
    env = make_env()
    step = BucketStep(env)
    other = FakeBucket(cloud, f"{PROJECT}-edge")  # appears between check and create
    cloud.buckets[other.name] = other
    step.apply(Check(Action.CREATE))
    assert cloud.buckets[other.name].versioning_enabled  # and it got our settings
    assert "storage.patch_bucket" in cloud.names()


def test_a_bucket_that_cannot_be_checked_is_named_and_says_why_in_the_plan(
    make_env: Any, cloud: FakeCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud.enabled_apis = {"storage.googleapis.com"}
    cloud.fail["storage.lookup_bucket"] = gexc.Forbidden("no access")

    out = run_setup(make_env(), tmp_path, monkeypatch, dry_run=True)

    lines = out.splitlines()
    i = next(n for n, line in enumerate(lines) if "GCS bucket" in line)
    assert lines[i].split() == [
        "not", "checked", "GCS", "bucket", f"gs://{PROJECT}-edge", "in", "us-central1,", "versioned,", "uniform", "access"
    ]  # fmt: skip
    assert "not checked: bucket gs://demo-project-1-edge exists but you cannot access it" in lines[i + 1]
    assert cloud.mutations() == []
