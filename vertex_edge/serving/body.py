"""The predict request's body: read (refused past the size limit), parsed, checked, and turned
into the float32 ``[N, 28, 28]`` batch the model takes, or a :class:`Problem` naming what was
wrong (for an invalid instance: its index and the problem).

Numbers become a batch in one step (:func:`to_batch`). A request with b64 images goes through
:class:`Decoding`, in the bounded image pool: every image's header is read first
(:meth:`Decoding.open`) and the decoded pixels counted - one image over the per-image limit is a
400 naming it, all of them over the per-request budget a 413 - before any pixel is decoded;
then the images are decoded a slice at a time (:meth:`Decoding.slices`), so concurrent requests
take turns in the pool and a request past its deadline stops between two slices.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from PIL import Image

from vertex_edge.preprocess import PreprocessError, image_to_array, instance_to_array, load_image, open_b64_instance
from vertex_edge.serving.asgi import Receive
from vertex_edge.serving.problems import Problem

MAX_REPORTED = 10  # invalid instances listed in one error
#: decoding work per slice, in pixels (about 20 ms of CPU); each image also counts a fixed cost
SLICE_PIXELS = 1 << 20
IMAGE_COST_PIXELS = 16_384  # what decoding any image costs besides its pixels (about 0.3 ms)


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


def invalid(details: list[dict[str, Any]], bad: int, total: int) -> Problem:
    """The 400 for invalid instances (``details``: the first :data:`MAX_REPORTED` of ``bad``)."""
    first = details[0]
    more = f" ({bad} of {total} instances are invalid; see details)" if bad > 1 else ""
    return Problem(400, f"instance {first['instance']}: {first['message']}{more}", details)


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
        raise invalid(details, bad, len(instances))
    return np.stack(arrays) if len(arrays) > 1 else arrays[0][np.newaxis]


class Decoding:
    """A request with b64 images on its way to a batch (see the module docstring). Each method
    runs in the image pool, one at a time for one request."""

    def __init__(self, instances: list[object], *, check_booleans: bool, max_image_pixels: int) -> None:
        self.instances = instances
        self.check_booleans = check_booleans
        self.max_image_pixels = max_image_pixels
        self.arrays: list[np.ndarray | None] = [None] * len(instances)
        self.images: dict[int, Image.Image] = {}
        self.details: list[dict[str, Any]] = []
        self.bad = 0
        self.pixels = 0  # decoded pixels of every image

    def _fail(self, index: int, exc: PreprocessError) -> None:
        self.bad += 1
        if len(self.details) < MAX_REPORTED:
            self.details.append({"instance": index, "message": str(exc)})

    def open(self, max_request_pixels: int) -> None:
        """Read every image's header (numbers are converted now): a 400 for invalid instances,
        a 413 as soon as the images would decode to more than ``max_request_pixels`` (the
        headers after that are not even read: 512 one-megapixel PNGs cost 34 header reads)."""
        images = sum(isinstance(i, dict) for i in self.instances)
        for index, instance in enumerate(self.instances):
            try:
                if isinstance(instance, dict):
                    image = open_b64_instance(instance, max_pixels=self.max_image_pixels)
                    self.images[index] = image
                    self.pixels += image.size[0] * image.size[1]
                    if self.pixels > max_request_pixels:
                        raise self._over_budget(images, max_request_pixels)
                else:
                    self.arrays[index] = instance_to_array(instance, check_booleans=self.check_booleans)
            except PreprocessError as exc:
                self._fail(index, exc)
        if self.details:
            raise invalid(self.details, self.bad, len(self.instances))

    def _over_budget(self, images: int, limit: int) -> Problem:
        opened = len(self.images)
        some = f"the first {opened} of the {images} images" if opened < images else f"the {images} images"
        return Problem(
            413,
            f"{some} of this request already decode to {self.pixels:,} pixels; the limit is {limit:,} per "
            "request: send fewer or smaller images (28x28 is what the model sees)",
        )

    def slices(self) -> list[list[int]]:
        """The images' indices in slices of about :data:`SLICE_PIXELS` of decoding work."""
        slices: list[list[int]] = []
        current: list[int] = []
        work = 0
        for index, image in self.images.items():
            current.append(index)
            work += image.size[0] * image.size[1] + IMAGE_COST_PIXELS
            if work >= SLICE_PIXELS:
                slices.append(current)
                current, work = [], 0
        if current:
            slices.append(current)
        return slices

    def decode(self, indices: list[int], deadline: float = float("inf")) -> bool:
        """Decode the images at ``indices`` into arrays (a corrupt one is noted, not raised);
        False, with nothing done, when the slice starts after ``deadline`` (``time.monotonic()``:
        it waited in the pool behind other requests' work)."""
        if time.monotonic() > deadline:
            return False
        for index in indices:
            try:
                # no reference kept here: image_to_array frees the full-size image as soon as it
                # has reduced it (a 4096x4096 RGBA image is 64 MB)
                self.arrays[index] = image_to_array(load_image(self.images.pop(index)))
            except PreprocessError as exc:
                self._fail(index, exc)
        return True

    def batch(self) -> np.ndarray:
        """float32 [N, 28, 28], or a 400 listing every invalid instance."""
        if self.details:
            self.details.sort(key=lambda d: d["instance"])
            raise invalid(self.details, self.bad, len(self.instances))
        arrays = self.arrays
        return np.stack(arrays) if len(arrays) > 1 else arrays[0][np.newaxis]  # type: ignore[index, arg-type]

    def close(self) -> None:
        """Release the images not decoded (a refused or late request)."""
        for image in self.images.values():
            image.close()
        self.images.clear()


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
