"""Google Cloud label values: what may be written where a label goes."""

from __future__ import annotations

import re

_LABEL_BAD = re.compile(r"[^a-z0-9_-]")


def gcp_label(value: object) -> str:
    """A valid Google Cloud label value: lower-case letters, digits, ``_`` and ``-``, at most 63."""
    text = str(value).lower().replace(".", "_")
    return _LABEL_BAD.sub("_", text)[:63]
