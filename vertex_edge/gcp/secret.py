"""The MongoDB passwords (root, the Sacred writer, the Omniboard reader: :meth:`GcpNames.account`):
generated once each, kept in Secret Manager, read at run time.

A password travels only through API payloads, stdin and the MongoDB protocol (over a
port-forward); it is never logged, printed, written to ``edge.yaml`` or the state, or put on a
command line.
"""

from __future__ import annotations

import secrets
from typing import Any

from vertex_edge.errors import CloudError, NotProvisionedError
from vertex_edge.gcp.errors import google_call
from vertex_edge.gcp.names import LABELS, ROOT, GcpNames

PASSWORD_BYTES = 32


def generate_password() -> str:
    """A random URL-safe password (usable in a MongoDB URL without escaping)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def secret_request(names: GcpNames, role: str = ROOT) -> dict[str, Any]:
    """CreateSecret: replicated only in the target's region, labelled as ours."""
    return {
        "parent": names.project_path,
        "secret_id": names.account(role).secret_id,
        "secret": {
            "replication": {"user_managed": {"replicas": [{"location": names.region}]}},
            "labels": dict(LABELS),
        },
    }


def version_request(names: GcpNames, password: str, role: str = ROOT) -> dict[str, Any]:
    import google_crc32c  # deferred: only setup stores a password; no Google module at import time

    data = password.encode("utf-8")
    return {"parent": names.account(role).secret_path, "payload": {"data": data, "data_crc32c": google_crc32c.value(data)}}


def read_password(clients: Any, names: GcpNames, role: str = ROOT) -> str:
    """The latest enabled password of the account ``role`` from Secret Manager."""
    secret_path = names.account(role).secret_path

    def access() -> Any:
        from google.api_core import exceptions as gexc  # deferred: a heavy import

        try:
            return clients.secret_manager.access_secret_version(
                request={"name": f"{secret_path}/versions/latest"}, timeout=30
            )
        except (gexc.NotFound, gexc.FailedPrecondition):
            raise NotProvisionedError(
                f"the MongoDB password secret {secret_path} has no enabled version",
                hint="run 'python edge.py setup --target gcp'",
            ) from None

    response = google_call(f"reading secret {secret_path}", access)
    data = response.payload.data
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise CloudError(f"secret {secret_path} does not hold a text password") from None
