"""Fast JSON for the request path: orjson when installed (it is, in the container), else the
standard library. Both refuse what is not JSON with a ``ValueError`` whose text says where."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

try:  # pragma: no cover - which branch runs depends on the environment
    import orjson
except ImportError:  # pragma: no cover
    orjson = None  # type: ignore[assignment]


def loads(data: bytes) -> Any:
    """Parse ``data``; raise ``ValueError`` (with the position) when it is not JSON."""
    if orjson is not None:
        return orjson.loads(data)
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def dumps(obj: Any) -> bytes:
    """Serialize ``obj``; numpy arrays become lists (float32 written in its shortest form)."""
    if orjson is not None:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(obj, default=_default, separators=(",", ":")).encode("utf-8")


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")
