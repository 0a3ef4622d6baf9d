"""The MongoDB password: generated once, kept in Secret Manager, read at run time.

The password travels only through API payloads and stdin; it is never logged, printed,
written to ``edge.yaml`` or the state, or put on a command line.
"""

from __future__ import annotations

import secrets
from typing import Any

from vertex_edge.errors import CloudError, NotProvisionedError
from vertex_edge.gcp.errors import google_call
from vertex_edge.gcp.names import LABELS, GcpNames

PASSWORD_BYTES = 32


def generate_password() -> str:
    """A random URL-safe password (usable in a MongoDB URL without escaping)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def secret_request(names: GcpNames) -> dict[str, Any]:
    """CreateSecret: replicated only in the target's region, labelled as ours."""
    return {
        "parent": names.project_path,
        "secret_id": names.secret_id,
        "secret": {
            "replication": {"user_managed": {"replicas": [{"location": names.region}]}},
            "labels": dict(LABELS),
        },
    }


def version_request(names: GcpNames, password: str) -> dict[str, Any]:
    import google_crc32c  # deferred: only setup stores a password; no Google module at import time

    data = password.encode("utf-8")
    return {"parent": names.secret_path, "payload": {"data": data, "data_crc32c": google_crc32c.value(data)}}


def read_password(clients: Any, names: GcpNames) -> str:
    """The latest enabled password from Secret Manager."""
    def access() -> Any:
        from google.api_core import exceptions as gexc  # deferred: a heavy import

        try:
            return clients.secret_manager.access_secret_version(
                request={"name": f"{names.secret_path}/versions/latest"}, timeout=30
            )
        except (gexc.NotFound, gexc.FailedPrecondition):
            raise NotProvisionedError(
                f"the MongoDB password secret {names.secret_path} has no enabled version",
                hint="run 'python edge.py setup --target gcp'",
            ) from None

    response = google_call(f"reading secret {names.secret_path}", access)
    data = response.payload.data
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise CloudError(f"secret {names.secret_path} does not hold a text password") from None
