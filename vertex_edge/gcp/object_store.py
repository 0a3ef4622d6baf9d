"""The GCS backend of :class:`vertex_edge.storage.ObjectStore`, and the gcp target's state store.

Objects live under ``gs://<bucket>/<prefix>/``. Every write and delete can carry a generation
precondition: ``if_generation_match=0`` creates only if absent (the atomic create-if-absent the
state lock relies on), ``N`` replaces or deletes only generation ``N``. GCS answers a failed
precondition with HTTP 412, which becomes :class:`~vertex_edge.errors.PreconditionFailedError`.
"""

from __future__ import annotations

from typing import Any

from vertex_edge.errors import PreconditionFailedError
from vertex_edge.gcp.errors import google_call
from vertex_edge.gcp.names import STATE_PREFIX, GcpNames
from vertex_edge.state import StateStore
from vertex_edge.storage import StoredObject

CONTENT_TYPE = "application/yaml"


class GcsStore:
    """An :class:`~vertex_edge.storage.ObjectStore` in a GCS bucket (``client`` is a ``storage.Client``)."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")

    def _name(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"invalid object key {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _blob(self, key: str) -> Any:
        return self.client.bucket(self.bucket_name).blob(self._name(key))

    def describe(self, key: str = "") -> str:
        base = f"gs://{self.bucket_name}" + (f"/{self.prefix}" if self.prefix else "")
        return f"gs://{self.bucket_name}/{self._name(key)}" if key else base

    def read(self, key: str) -> StoredObject | None:
        """The object and its generation: metadata first, then the bytes of exactly that generation."""
        from google.api_core import exceptions as gexc  # deferred: a heavy import

        bucket = self.client.bucket(self.bucket_name)

        def attempt() -> StoredObject | None | bool:
            try:
                blob = bucket.get_blob(self._name(key))
                if blob is None:
                    return None
                generation = int(blob.generation or 0)  # before: a download resets it from its headers
                return StoredObject(blob.download_as_bytes(if_generation_match=generation or None), generation)
            except (gexc.PreconditionFailed, gexc.NotFound):
                return False  # replaced or deleted between the two calls: look again

        for _ in range(5):
            found = google_call(f"cannot read {self.describe(key)}", attempt)
            if found is not False:
                return found  # type: ignore[return-value]
        raise PreconditionFailedError(f"{self.describe(key)} kept changing while it was read")

    def exists(self, key: str) -> bool:
        return bool(google_call(f"cannot check {self.describe(key)}", lambda: self._blob(key).exists()))

    def write(self, key: str, data: bytes, *, if_generation_match: int | None = None) -> int:
        from google.api_core import exceptions as gexc  # deferred: a heavy import

        blob = self._blob(key)

        def upload() -> None:
            try:
                blob.upload_from_string(data, content_type=CONTENT_TYPE, if_generation_match=if_generation_match)
            except gexc.PreconditionFailed:
                what = "already exists" if if_generation_match == 0 else f"is no longer generation {if_generation_match}"
                raise PreconditionFailedError(f"{self.describe(key)} {what}") from None

        google_call(f"cannot write {self.describe(key)}", upload)
        return int(blob.generation or 0)

    def delete(self, key: str, *, if_generation_match: int | None = None) -> bool:
        from google.api_core import exceptions as gexc  # deferred: a heavy import

        blob = self._blob(key)

        def remove() -> bool:
            try:
                blob.delete(if_generation_match=if_generation_match)
            except gexc.NotFound:
                return False
            except gexc.PreconditionFailed:
                raise PreconditionFailedError(f"{self.describe(key)} changed since it was read") from None
            return True

        return bool(google_call(f"cannot delete {self.describe(key)}", remove))


def state_store(clients: Any, names: GcpNames) -> StateStore:
    """The state at ``gs://<bucket>/.edge/state.yaml`` and its lock beside it (``clients`` is a
    :class:`~vertex_edge.gcp.clients.GcpClients`, or None where no call will be made)."""
    return StateStore(GcsStore(clients.storage if clients is not None else None, names.bucket, STATE_PREFIX))
