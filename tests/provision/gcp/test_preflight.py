"""Pre-checks on inaccessible or deleted projects, and checks that cannot be verified."""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions as gexc

from tests.gcp.fakes import PROJECT, FakeCloud
from vertex_edge.provision.gcp.preflight import Status, run_prechecks


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
