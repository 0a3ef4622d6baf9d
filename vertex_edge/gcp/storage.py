"""The GCS backend of :class:`vertex_edge.storage.ObjectStore`.

Objects live under ``gs://<bucket>/<prefix>/``. Every write and delete can carry a generation
precondition: ``if_generation_match=0`` creates only if absent (the atomic create-if-absent the
state lock relies on), ``N`` replaces or deletes only generation ``N``. GCS answers a failed
precondition with HTTP 412, which becomes :class:`~vertex_edge.errors.PreconditionFailedError`.
"""

from __future__ import annotations

from typing import Any

from vertex_edge.errors import PreconditionFailedError
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
        from google.api_core import exceptions as gexc

        bucket = self.client.bucket(self.bucket_name)
        for _ in range(5):
            try:
                blob = bucket.get_blob(self._name(key))
                if blob is None:
                    return None
                generation = int(blob.generation or 0)  # before: a download resets it from its headers
                data = blob.download_as_bytes(if_generation_match=generation or None)
            except (gexc.PreconditionFailed, gexc.NotFound):
                continue  # replaced or deleted between the two calls: look again
            except Exception as exc:  # noqa: BLE001 - translated below
                raise self._error("read", key, exc) from None
            return StoredObject(data, generation)
        raise PreconditionFailedError(f"{self.describe(key)} kept changing while it was read")

    def exists(self, key: str) -> bool:
        try:
            return bool(self._blob(key).exists())
        except Exception as exc:  # noqa: BLE001 - translated below
            raise self._error("check", key, exc) from None

    def write(self, key: str, data: bytes, *, if_generation_match: int | None = None) -> int:
        from google.api_core import exceptions as gexc

        blob = self._blob(key)
        try:
            blob.upload_from_string(data, content_type=CONTENT_TYPE, if_generation_match=if_generation_match)
        except gexc.PreconditionFailed:
            what = "already exists" if if_generation_match == 0 else f"is no longer generation {if_generation_match}"
            raise PreconditionFailedError(f"{self.describe(key)} {what}") from None
        except Exception as exc:  # noqa: BLE001 - translated below
            raise self._error("write", key, exc) from None
        return int(blob.generation or 0)

    def delete(self, key: str, *, if_generation_match: int | None = None) -> bool:
        from google.api_core import exceptions as gexc

        blob = self._blob(key)
        try:
            blob.delete(if_generation_match=if_generation_match)
        except gexc.NotFound:
            return False
        except gexc.PreconditionFailed:
            raise PreconditionFailedError(f"{self.describe(key)} changed since it was read") from None
        except Exception as exc:  # noqa: BLE001 - translated below
            raise self._error("delete", key, exc) from None
        return True

    def _error(self, verb: str, key: str, exc: Exception) -> Exception:
        """A :class:`CloudError` for Google and network errors; anything else is returned as is."""
        from vertex_edge.gcp.clients import translate

        return translate(exc, f"cannot {verb} {self.describe(key)}") or exc
