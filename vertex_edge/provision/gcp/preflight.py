"""Pre-checks before the gcp target provisions anything, each with a clear message and hint.

Application Default Credentials present and usable; project exists and is accessible; billing
enabled; region supported by Vertex AI; ``kubectl`` and ``helm`` present (only when the steps
that need them will run). The first call that reaches Google (refreshing the token, with a
short timeout) decides whether Google is reachable at all: if not, the gate closes and every
later check and step is "not checked", with the reason said once. Each call goes through
:func:`~vertex_edge.provision.gcp.env.guarded` (the one classifier).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from vertex_edge import proc
from vertex_edge.gcp.names import VERTEX_AI_REGIONS
from vertex_edge.provision.gcp.env import GcpEnv, Unchecked, enum_name, guarded

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
    """ADC usable: fetches a token with a short timeout (the first call that reaches Google).
    Any failure closes the gate: nothing else is tried."""
    name = "Application Default Credentials"
    if env.gate.reason:
        return Precheck(name, Status.FAILED, env.gate.reason, env.gate.hint)
    clients = env.gcp
    refreshed = guarded(env, name, lambda: clients.refresh(timeout=REFRESH_TIMEOUT))
    if isinstance(refreshed, Unchecked):
        env.gate.block(refreshed.reason, refreshed.hint)
        return Precheck(name, Status.FAILED, refreshed.reason, refreshed.hint)
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
    project = guarded(
        env, name, lambda: env.gcp.projects.get_project(request={"name": env.names.project_path}, timeout=env.call_timeout)
    )
    if isinstance(project, Unchecked):
        if project.blocks_everything:
            return Precheck(name, Status.FAILED, project.reason, project.hint)
        if project.kind == "disabled":
            return Precheck(name, Status.WARNING, f"not verified: {project.reason} in your quota project")
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
    info = guarded(
        env,
        name,
        lambda: env.gcp.billing.get_project_billing_info(
            request={"name": env.names.project_path}, timeout=env.call_timeout
        ),
    )
    if isinstance(info, Unchecked):
        if info.blocks_everything:
            return Precheck(name, Status.FAILED, info.reason, info.hint)
        return Precheck(name, Status.WARNING, f"not verified: {info.reason}")
    if not info.billing_enabled:
        return Precheck(
            name,
            Status.FAILED,
            f"billing is not enabled for project {env.names.project}",
            f"link a billing account: https://console.cloud.google.com/billing/linkedaccount?project={env.names.project}",
        )
    account = str(getattr(info, "billing_account_name", "") or "")
    return Precheck(name, Status.OK, f"enabled ({account})" if account else "enabled")
