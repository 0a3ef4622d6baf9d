"""The GCS bucket (DVC store, state and lock): created versioned, with uniform bucket-level
access and public access prevented; deleted by teardown only with ``--delete-data``, every
object version first."""

from __future__ import annotations

from typing import Any

from vertex_edge.errors import CloudError
from vertex_edge.gcp.names import LABELS
from vertex_edge.provision.engine import Action, Check
from vertex_edge.provision.gcp.env import GcpEnv
from vertex_edge.provision.gcp.resource import Finding, GcpStep, TeardownItem, Verdict
from vertex_edge.state import Resource


def lookup_bucket(env: GcpEnv) -> Any | None:
    """The bucket, None when there is none; :class:`CloudError` when it exists but is not ours to see."""
    from google.api_core import exceptions as gexc  # deferred: a heavy import (see vertex_edge.gcp.errors)

    name = env.names.bucket
    try:
        return env.gcp.storage.lookup_bucket(name, timeout=env.call_timeout)
    except gexc.Forbidden:
        raise CloudError(
            f"bucket gs://{name} exists but you cannot access it (bucket names are global)",
            hint="choose another name: set gcp.bucket in edge.yaml",
        ) from None


def missing_settings(bucket: Any) -> list[str]:
    fixes = []
    if not bucket.versioning_enabled:
        fixes.append("object versioning")
    if not bucket.iam_configuration.uniform_bucket_level_access_enabled:
        fixes.append("uniform bucket-level access")
    return fixes


def configure(bucket: Any) -> None:
    bucket.versioning_enabled = True
    bucket.iam_configuration.uniform_bucket_level_access_enabled = True
    bucket.iam_configuration.public_access_prevention = "enforced"
    bucket.labels = {**(bucket.labels or {}), **LABELS}


class BucketStep(GcpStep):
    key = "bucket"
    title = "GCS bucket"
    api = "storage.googleapis.com"

    def expected(self) -> Resource:
        return Resource(
            kind="gcs-bucket",
            name=self.names.bucket,
            location=f"gs://{self.names.bucket}",
            details={"region": self.names.region, "versioning": True, "uniform_bucket_level_access": True},
        )

    def describe(self) -> str:
        return f"gs://{self.names.bucket} in {self.names.region}, versioned, uniform access"

    def _check(self) -> Check:
        bucket = lookup_bucket(self.env)
        if bucket is None:
            return Check(Action.CREATE, self.describe())
        self.env.bucket_ready = True
        fixes = missing_settings(bucket)
        if fixes:
            return Check(Action.UPDATE, f"gs://{self.names.bucket}: turn on " + " and ".join(fixes))
        where = str(getattr(bucket, "location", "") or "").lower()
        note = f" (location {where})" if where and where != self.names.region else ""
        return Check(Action.KEEP, f"gs://{self.names.bucket}{note}", self.expected())

    def _apply(self, check: Check) -> Resource:
        from google.api_core import exceptions as gexc  # deferred: a heavy import (see vertex_edge.gcp.errors)

        storage, timeout = self.env.gcp.storage, self.env.call_timeout
        if check.action is Action.CREATE:
            bucket = storage.bucket(self.names.bucket)
            configure(bucket)
            try:
                storage.create_bucket(bucket, project=self.names.project, location=self.names.region, timeout=timeout)
            except gexc.Conflict:
                # created meanwhile (another edge.py, or a name taken elsewhere): look again
                existing = lookup_bucket(self.env)
                if existing is None:
                    raise CloudError(
                        f"bucket name {self.names.bucket} is taken", hint="set gcp.bucket in edge.yaml"
                    ) from None
                if missing_settings(existing):
                    configure(existing)
                    existing.patch(timeout=timeout)
        else:
            bucket = storage.get_bucket(self.names.bucket, timeout=timeout)
            configure(bucket)
            bucket.patch(timeout=timeout)
        self.env.bucket_ready = True
        return self.expected()


class BucketItem(TeardownItem):
    key = "bucket"
    title = "GCS bucket"
    removes = ("bucket", "state")

    def describe(self) -> str:
        return f"gs://{self.names.bucket}"

    def _check(self) -> Finding:
        if lookup_bucket(self.env) is None:
            return Finding(Verdict.ABSENT, self.describe())
        return self._keep_or_delete(
            f"gs://{self.names.bucket} (DVC data, state; every object version)",
            f"bucket gs://{self.names.bucket}: Cloud Storage bills stored data, old versions included, per GB-month",
        )

    def _delete(self, finding: Finding) -> None:
        env = self.env
        storage = env.gcp.storage
        count = 0
        for blob in storage.list_blobs(self.names.bucket, versions=True, timeout=env.call_timeout):
            blob.delete(timeout=env.call_timeout)
            count += 1
            if count % 100 == 0:
                env.notify(f"deleted {count} objects from gs://{self.names.bucket}")
        storage.bucket(self.names.bucket).delete(timeout=env.call_timeout)
