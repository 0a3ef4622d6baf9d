"""Pre-checks before the gcp target provisions anything, each with a clear message and hint.

Application Default Credentials present and usable; project exists and is accessible; billing
enabled; region supported by Vertex AI; ``kubectl`` and ``helm`` present (only when the steps
that need them will run). The first call that reaches Google (refreshing the token, with a
short timeout) decides whether Google is reachable at all: if not, the gate closes and every
later check and step is "not checked", with the reason said once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from vertex_edge import proc
from vertex_edge.gcp.errors import classify
from vertex_edge.gcp.names import VERTEX_AI_REGIONS
from vertex_edge.gcp.steps import GcpEnv, enum_name

REFRESH_TIMEOUT = 10.0


class Status(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"  # setup cannot go on
    WARNING = "warning"  # could not be verified; setup goes on
    UNCHECKED = "not checked"


@dataclass(frozen=True)
class Precheck:
    name: str
    status: Status
    detail: str = ""
    hint: str | None = None


def run_prechecks(env: GcpEnv, *, need_tools: bool) -> list[Precheck]:
    names = env.names
    results = [check_credentials(env)]
    results.append(_project(env))
    results.append(_billing(env))
    if names.region in VERTEX_AI_REGIONS:
        results.append(Precheck(f"region {names.region}", Status.OK, "Vertex AI serves endpoints there"))
    else:
        results.append(
            Precheck(
                f"region {names.region}",
                Status.FAILED,
                "Vertex AI does not serve endpoints in this region",
                "pick one of: " + ", ".join(sorted(VERTEX_AI_REGIONS)) + " (--region or gcp.region in edge.yaml)",
            )
        )
    if need_tools:
        for tool in ("kubectl", "helm"):
            path = proc.which(tool)
            if path:
                results.append(Precheck(tool, Status.OK, path))
            else:
                why = "not found on PATH (needed to install Sacred in GKE)"
                results.append(Precheck(tool, Status.FAILED, why, proc.install_hint(tool)))
    return results


def check_credentials(env: GcpEnv) -> Precheck:
    """ADC usable: fetches a token with a short timeout (the first call that reaches Google)."""
    name = "Application Default Credentials"
    if env.gate.reason:
        return Precheck(name, Status.FAILED, env.gate.reason, env.gate.hint)
    clients = env.gcp
    try:
        clients.refresh(timeout=REFRESH_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - classified below, re-raised if unknown
        problem = classify(exc)
        if problem is None:
            raise
        env.gate.block(problem.message, problem.hint)
        return Precheck(name, Status.FAILED, problem.message, problem.hint)
    credentials = clients.credentials
    who = getattr(credentials, "service_account_email", None) or getattr(credentials, "account", None) or ""
    if not who or who == "default":
        who = "user credentials" if credentials is not None else "injected clients"
    quota = getattr(credentials, "quota_project_id", None)
    return Precheck(name, Status.OK, who + (f", quota project {quota}" if quota else ""))


def _project(env: GcpEnv) -> Precheck:
    name = f"project {env.names.project}"
    if env.gate.reason:
        return Precheck(name, Status.UNCHECKED)
    try:
        project = env.gcp.projects.get_project(request={"name": env.names.project_path}, timeout=env.call_timeout)
    except Exception as exc:  # noqa: BLE001 - classified below, re-raised if unknown
        problem = classify(exc)
        if problem is None:
            raise
        if problem.blocks_everything:
            env.gate.block(problem.message, problem.hint)
            return Precheck(name, Status.FAILED, problem.message, problem.hint)
        if problem.kind == "disabled":
            return Precheck(name, Status.WARNING, f"not verified: {problem.message} in your quota project")
        return Precheck(
            name,
            Status.FAILED,
            "does not exist or you cannot access it",
            "check the id ('gcloud projects list'); you need a role on it (see docs/gcp.md)",
        )
    state = enum_name(getattr(project, "state", "ACTIVE"))
    if state != "ACTIVE":
        return Precheck(name, Status.FAILED, f"is {state}", "restore it or choose another project")
    display = str(getattr(project, "display_name", "") or "")
    return Precheck(name, Status.OK, display or "accessible")


def _billing(env: GcpEnv) -> Precheck:
    name = "billing"
    if env.gate.reason:
        return Precheck(name, Status.UNCHECKED)
    try:
        info = env.gcp.billing.get_project_billing_info(
            request={"name": env.names.project_path}, timeout=env.call_timeout
        )
    except Exception as exc:  # noqa: BLE001 - classified below, re-raised if unknown
        problem = classify(exc)
        if problem is None:
            raise
        if problem.blocks_everything:
            env.gate.block(problem.message, problem.hint)
            return Precheck(name, Status.FAILED, problem.message, problem.hint)
        return Precheck(name, Status.WARNING, f"not verified: {problem.message}")
    if not info.billing_enabled:
        return Precheck(
            name,
            Status.FAILED,
            f"billing is not enabled for project {env.names.project}",
            f"link a billing account: https://console.cloud.google.com/billing/linkedaccount?project={env.names.project}",
        )
    account = str(getattr(info, "billing_account_name", "") or "")
    return Precheck(name, Status.OK, f"enabled ({account})" if account else "enabled")
