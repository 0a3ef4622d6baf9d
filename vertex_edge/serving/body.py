"""The predict request's body: read (refused past the size limit), parsed, checked, and turned
into the float32 ``[N, 28, 28]`` batch the model takes, or a :class:`Problem` naming what was
wrong (for an invalid instance: its index and the problem)."""

from __future__ import annotations

from typing import Any

import numpy as np

from vertex_edge.preprocess import PreprocessError, instance_to_array
from vertex_edge.serving.asgi import Receive
from vertex_edge.serving.problems import Problem

MAX_REPORTED = 10  # invalid instances listed in one error


def is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")


async def read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The body, refused with 413 past ``limit`` bytes: by Content-Length before reading, and
    by counting the streamed bytes (chunked uploads have no Content-Length)."""
    if declared is not None:
        if not declared.strip().isdigit():
            raise Problem(400, f"Content-Length {declared!r} is not a number of bytes")
        if int(declared) > limit:
            raise Problem(413, _too_large(int(declared), limit))
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            raise Problem(400, "the client closed the connection before sending the whole body")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise Problem(413, _too_large(size, limit, at_least=True))
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if not body.strip():
        raise Problem(400, 'the body is empty; expected JSON like {"instances": [...]}')
    return body


def _too_large(size: int, limit: int, *, at_least: bool = False) -> str:
    return (
        f"the body is {'over ' if at_least else ''}{size:,} bytes; the limit is {limit:,} bytes "
        "(1.5 MB, as on Vertex AI): send fewer instances per request"
    )


def _describe(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def parse_instances(payload: object, max_instances: int) -> tuple[list[object], bool]:
    """The instances, and whether ``parameters.labels`` asks for every class's name."""
    expected = '{"instances": [...], "parameters": {...}} (parameters optional)'
    if not isinstance(payload, dict):
        raise Problem(400, f"the body is {_describe(payload)}; expected a JSON object {expected}")
    unknown = [k for k in payload if k not in ("instances", "parameters")]
    if unknown:
        names = ", ".join(repr(k) for k in unknown[:5])
        raise Problem(400, f"unknown key(s) {names}; expected {expected}")
    if "instances" not in payload:
        raise Problem(400, f"'instances' is missing; expected {expected}")
    instances = payload["instances"]
    if not isinstance(instances, list):
        raise Problem(400, f"'instances' is {_describe(instances)}; expected a list of instances")
    if not instances:
        raise Problem(400, f"'instances' is empty; expected 1 to {max_instances} instances")
    if len(instances) > max_instances:
        raise Problem(
            400, f"'instances' has {len(instances)} instances; at most {max_instances} are accepted per request"
        )
    parameters = payload.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise Problem(400, f"'parameters' is {_describe(parameters)}; expected an object")
    with_labels = (parameters or {}).get("labels", False)
    if not isinstance(with_labels, bool):
        raise Problem(400, f"'parameters.labels' is {_describe(with_labels)}; expected true or false")
    return instances, with_labels


def to_batch(instances: list[object], check_booleans: bool = True) -> np.ndarray:
    """float32 [N, 28, 28] for the instances, or a 400 listing every invalid one by index."""
    if not check_booleans:
        fast = _fast_batch(instances)
        if fast is not None:
            return fast
    arrays: list[np.ndarray] = []
    details: list[dict[str, Any]] = []
    bad = 0
    for index, instance in enumerate(instances):
        try:
            arrays.append(instance_to_array(instance, check_booleans=check_booleans))
        except PreprocessError as exc:
            bad += 1
            if len(details) < MAX_REPORTED:
                details.append({"instance": index, "message": str(exc)})
    if details:
        first = details[0]
        more = f" ({bad} of {len(instances)} instances are invalid; see details)" if bad > 1 else ""
        raise Problem(400, f"instance {first['instance']}: {first['message']}{more}", details)
    return np.stack(arrays) if len(arrays) > 1 else arrays[0][np.newaxis]


def _fast_batch(instances: list[object]) -> np.ndarray | None:
    """All-numeric instances of one shape in one numpy conversion (one image too); None when
    anything is unusual (the per-instance path then finds and names the problem)."""
    if not all(type(i) is list for i in instances):
        return None
    try:
        arr = np.array(instances)
    except (ValueError, TypeError, OverflowError):
        return None
    if arr.dtype.kind not in "iuf" or arr.shape[1:] not in ((28, 28), (784,)):
        return None
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        return None
    if arr.min() < 0 or arr.max() > 255:
        return None
    return arr.reshape(len(instances), 28, 28).astype(np.float32)
