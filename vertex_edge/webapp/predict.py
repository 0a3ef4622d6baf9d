"""One prediction as the web app makes it: decode and preprocess the upload (the shared pipeline
of :mod:`vertex_edge.preprocess`) in the bounded decode pool, within the pixel budget and the
request's deadline; ask the endpoint; and say what went wrong in words a user can act on
(:mod:`~vertex_edge.webapp.failures`)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from vertex_edge.preprocess import (
    MAX_IMAGE_PIXELS,
    PreprocessError,
    array_to_png,
    image_to_array,
    load_image,
    open_image,
)
from vertex_edge.webapp.client import Prediction, PredictionClient
from vertex_edge.webapp.limits import Deadline, DeadlineExceeded, WorkPool
from vertex_edge.webapp.settings import WebappSettings

#: bytes of an upload read to learn its size before decoding: every common file's header fits;
#: a file whose header does not (or a hostile one of countless tiny chunks) is sized in the pool
PEEK_BYTES = 64 * 1024
#: jobs up to this many pixels may use the pool's reserved thread (they never wait behind large ones)
CHEAP_PIXELS = 1 << 20


Size = tuple[int, int, str]  # width, height and format of what decoding makes
Prepared = tuple[Any, bytes]  # the 28x28 array and its PNG


@dataclass(frozen=True)
class Outcome:
    prediction: Prediction
    model_input_png: bytes
    preprocess_ms: float
    endpoint_ms: float

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.endpoint_ms


def decode_pool(settings: WebappSettings) -> WorkPool:
    """The pool every upload is decoded in: ``decode_workers`` threads plus one for small images."""
    return WorkPool("decode", settings.decode_workers, reserved=1, cheap_cost=CHEAP_PIXELS)


def decoded_size(data: bytes | bytearray) -> Size | None:
    """``(width, height, format)`` of what decoding ``data`` would make (a large JPEG: at its
    reduced scale), from the header only; ``None`` when the header cannot be read (decoding
    then says why)."""
    try:
        with open_image(data, max_pixels=1 << 62) as image:  # only its size: the budget is checked by the caller
            width, height = image.size
            return width, height, str(image.format)
    except Exception:  # noqa: BLE001 - any unreadable header: decoding gives the message
        return None


def _check_budget(size: Size | None, budget: int) -> int:
    """The pixels ``size`` decodes to; :class:`PreprocessError` over ``budget``."""
    if size is None:
        return budget
    width, height, fmt = size
    if width * height > budget:
        scaled = " at its reduced decoding size" if fmt == "JPEG" else ""
        raise PreprocessError(
            f"image is {width}x{height} = {width * height:,} pixels{scaled}, over the limit of {budget:,}; "
            "send a smaller image"
        )
    return width * height


def prepare(data: bytes | bytearray, budget: int) -> Prepared:
    """Decode and preprocess ``data`` within ``budget`` pixels (runs in the decode pool). The
    header is parsed once: a large JPEG is budgeted, and decoded, at its reduced scale."""
    image = open_image(data, max_pixels=MAX_IMAGE_PIXELS)
    width, height = image.size
    _check_budget((width, height, str(image.format)), budget)
    array = image_to_array(load_image(image))
    del image
    return array, array_to_png(array)


def _size_or_small(data: bytes | bytearray, budget: int) -> tuple[Size | None, Prepared | None]:
    """The first job of every upload: the decoded size from the first :data:`PEEK_BYTES`, and
    for an image of at most :data:`CHEAP_PIXELS` within the budget the preprocessed result
    itself (one trip through the pool for the common case)."""
    size = decoded_size(data[:PEEK_BYTES])
    if size is not None and size[0] * size[1] <= min(CHEAP_PIXELS, budget):
        return size, prepare(data, budget)
    return size, None


async def predict_image(
    data: bytes | bytearray, client: PredictionClient, settings: WebappSettings, pool: WorkPool, deadline: Deadline
) -> Outcome:
    """Preprocess (the shared pipeline, in ``pool``) and ask the endpoint, within ``deadline``.
    Raises PreprocessError, CloudError, :class:`~.limits.Busy` or :class:`DeadlineExceeded`."""
    start = time.perf_counter()
    budget = settings.max_image_pixels
    # the header first, in the reserved thread (a small file can still be a decompression bomb);
    # a small image is decoded there at once, anything larger is queued by its cost
    size, prepared = await pool.run(_size_or_small, data, budget, cost=0, deadline=deadline)
    if prepared is None:
        if size is not None:
            cost = _check_budget(size, budget)  # refused before anything is decoded
        elif len(data) <= PEEK_BYTES:
            cost = 0  # not a readable image: decoding says why, at once
        else:
            cost = budget  # a header longer than the peek: sized (and refused) in the pool
        prepared = await pool.run(prepare, data, budget, cost=cost, deadline=deadline)
    array, png = prepared
    ready = time.perf_counter()
    try:
        async with asyncio.timeout(deadline.remaining()):
            prediction = await client.predict(array)
    except TimeoutError:
        raise DeadlineExceeded("the prediction endpoint", deadline.seconds) from None
    done = time.perf_counter()
    return Outcome(prediction, png, (ready - start) * 1000, (done - ready) * 1000)
