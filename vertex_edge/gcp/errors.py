"""Google Cloud errors in words a user can act on: the ONE classifier and the ONE call wrapper.

:func:`classify` turns whatever a Google client, google-auth or the network raised into a
:class:`CloudProblem` (unreachable, credentials, API disabled, permission, not found, ...).
:func:`google_call` runs one call and raises :class:`~vertex_edge.errors.CloudError` naming what
failed; every module that talks to Google (provisioning, Vertex AI jobs and deploys, GCS, the
web app's endpoint client) goes through these two.

The Google SDK modules are imported inside the functions: ``google.api_core.exceptions`` alone
takes about 0.1 s to import, which every ``edge.py`` command would otherwise pay.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from vertex_edge.errors import CloudError, EdgeError

T = TypeVar("T")

ADC_HINT = (
    "run 'gcloud auth application-default login' (on a workstation) or set GOOGLE_APPLICATION_CREDENTIALS "
    "to a service-account key file (in CI)"
)
#: errors that mean a bug in our code (or a fake), never a cloud failure: they are not translated
PROGRAMMING_ERRORS = (TypeError, AttributeError, NameError, AssertionError, KeyError, IndexError)


@dataclass(frozen=True)
class CloudProblem:
    """What went wrong with a Google call, in words a user can act on."""

    # "unreachable" | "timeout" | "credentials" | "disabled" | "permission" | "not_found"
    # | "precondition" | "api"
    kind: str
    message: str
    hint: str | None = None

    @property
    def blocks_everything(self) -> bool:
        """No other call is likely to succeed either (offline, timing out, or credentials rejected)."""
        return self.kind in ("unreachable", "timeout", "credentials")


def classify(exc: BaseException) -> CloudProblem | None:
    """A :class:`CloudProblem` for errors raised by Google clients, google-auth or the network
    under them; None for anything else."""
    from google.api_core import exceptions as gexc  # deferred: a heavy import (see the module docstring)
    from google.auth import exceptions as aexc

    if isinstance(exc, aexc.RefreshError):
        return CloudProblem(
            "credentials", f"Google rejected the Application Default Credentials ({first_line(exc)})", ADC_HINT
        )
    if isinstance(exc, aexc.TransportError):
        return CloudProblem("unreachable", f"cannot reach Google Cloud ({first_line(exc)})", "check the network or proxy")
    if isinstance(exc, aexc.DefaultCredentialsError):
        return CloudProblem("credentials", f"no Application Default Credentials ({first_line(exc)})", ADC_HINT)
    if isinstance(exc, aexc.GoogleAuthError):
        return CloudProblem("credentials", f"Google authentication failed ({first_line(exc)})", ADC_HINT)
    if _is_connection_error(exc):
        return CloudProblem("unreachable", f"cannot reach Google Cloud ({type(exc).__name__})", "check the network")
    if isinstance(exc, gexc.RetryError):
        inner = classify(exc.cause) if exc.cause is not None else None
        return inner or CloudProblem(
            "unreachable", f"cannot reach Google Cloud ({first_line(exc)})", "check the network"
        )
    if isinstance(exc, (gexc.DeadlineExceeded, TimeoutError)):
        return CloudProblem("timeout", f"Google Cloud did not answer in time ({first_line(exc)})", "retry")
    if isinstance(exc, gexc.ServiceUnavailable):
        return CloudProblem("unreachable", f"cannot reach Google Cloud ({first_line(exc)})", "check the network or retry")
    if isinstance(exc, gexc.Unauthenticated):
        return CloudProblem("credentials", f"Google rejected the credentials ({first_line(exc)})", ADC_HINT)
    if isinstance(exc, (gexc.PermissionDenied, gexc.Forbidden)):
        return _permission_problem(exc)
    if isinstance(exc, gexc.NotFound):
        return CloudProblem("not_found", first_line(exc))
    if isinstance(exc, gexc.FailedPrecondition):
        return CloudProblem("precondition", first_line(exc))
    if isinstance(exc, gexc.GoogleAPICallError):
        return CloudProblem("api", first_line(exc))
    return None


def _is_connection_error(exc: BaseException) -> bool:
    import requests  # deferred with google-auth, which brings it

    return isinstance(exc, (requests.ConnectionError, requests.Timeout, ConnectionError))


def _permission_problem(exc: BaseException) -> CloudProblem:
    api = disabled_api(exc)
    if api:
        return CloudProblem(
            "disabled",
            f"the {api} API is not enabled",
            "setup enables it; if this persists, wait a minute (enabling takes effect gradually)",
        )
    if "quota project" in str(exc).lower():
        return CloudProblem(
            "credentials",
            f"the API needs a quota project ({first_line(exc)})",
            "run 'gcloud auth application-default set-quota-project <your project id>'",
        )
    return CloudProblem("permission", f"permission denied ({first_line(exc)})", "see docs/gcp.md for the IAM roles needed")


def disabled_api(exc: BaseException) -> str | None:
    """The service name when a 403 says an API is not enabled (SERVICE_DISABLED), else None."""
    for detail in getattr(exc, "details", None) or []:
        if getattr(detail, "reason", None) == "SERVICE_DISABLED":
            return str((getattr(detail, "metadata", None) or {}).get("service") or "required")
    if getattr(exc, "reason", None) == "SERVICE_DISABLED":
        return str((getattr(exc, "metadata", None) or {}).get("service") or "required")
    text = str(exc)
    if "SERVICE_DISABLED" in text or "has not been used in project" in text or "it is disabled" in text:
        match = re.search(r"([a-z0-9.-]+\.googleapis\.com)", text)
        return match.group(1) if match else "required"
    return None


def is_not_found(exc: BaseException) -> bool:
    """Whether ``exc`` is Google's "not found" (HTTP 404 / gRPC NOT_FOUND)."""
    from google.api_core import exceptions as gexc

    return isinstance(exc, gexc.NotFound)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def translate(exc: BaseException, what: str) -> CloudError | None:
    """A :class:`CloudError` saying ``what`` failed and why, or None when ``exc`` is not a Google error."""
    problem = classify(exc)
    if problem is None:
        return None
    return CloudError(f"{what}: {problem.message}", hint=problem.hint)


def google_call(what: str, fn: Callable[[], T]) -> T:
    """Run one call to Google; its failure becomes a :class:`CloudError` naming ``what`` (e.g.
    ``"cannot submit the training job"``) and saying why.

    Our own typed errors pass through; errors that mean a bug (``TypeError``, ...) are re-raised
    as they are. Anything else a Google SDK raised (they raise ``ValueError``/``RuntimeError``
    for resources in a bad state) becomes a :class:`CloudError` with its first line."""
    try:
        return fn()
    except (EdgeError, *PROGRAMMING_ERRORS):
        raise
    except Exception as exc:  # noqa: BLE001 - classified below
        raise translate(exc, what) or CloudError(f"{what}: {first_line(exc)}") from None
