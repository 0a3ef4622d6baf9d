"""One prediction as the web app makes it: decode and preprocess the upload (the shared pipeline
of :mod:`vertex_edge.preprocess`), ask the endpoint, and say what went wrong in words a user can
act on (:func:`failure_for`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from vertex_edge.errors import CloudError
from vertex_edge.preprocess import PreprocessError, array_to_png, decode_image, image_to_array
from vertex_edge.webapp.client import Prediction, PredictionClient
from vertex_edge.webapp.logs import BodyTooLarge
from vertex_edge.webapp.settings import WebappSettings


@dataclass(frozen=True)
class Outcome:
    prediction: Prediction
    model_input_png: bytes
    preprocess_ms: float
    endpoint_ms: float

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.endpoint_ms


@dataclass(frozen=True)
class Failure:
    """An error as the user sees it."""

    status: int
    code: str
    title: str
    message: str


class NoImageError(ValueError):
    """The form had neither a file nor a sample."""


class UnknownSampleError(ValueError):
    """The form named a sample that does not exist."""


def _prepare(data: bytes, max_pixels: int) -> tuple[Any, bytes]:
    image = decode_image(data, max_pixels=max_pixels)
    array = image_to_array(image)
    return array, array_to_png(array)


async def predict_image(data: bytes, client: PredictionClient, settings: WebappSettings) -> Outcome:
    """Preprocess (the shared pipeline) and ask the endpoint. Raises PreprocessError/CloudError."""
    start = time.perf_counter()
    array, png = await run_in_threadpool(_prepare, data, settings.max_image_pixels)
    ready = time.perf_counter()
    prediction = await client.predict(array)
    done = time.perf_counter()
    return Outcome(prediction, png, (ready - start) * 1000, (done - ready) * 1000)


def failure_for(exc: BaseException, settings: WebappSettings, rid: str | None = None) -> Failure:
    """Map an exception to what the user is told. Unknown exceptions become a generic 500."""
    limit = f"{settings.max_upload_mb:g} MB"
    if isinstance(exc, BodyTooLarge):
        size = f" This one is {exc.size / (1024 * 1024):.1f} MB." if exc.size else ""
        return Failure(413, "too_large", "The image is too large", f"Uploads are limited to {limit}.{size}")
    if isinstance(exc, NoImageError):
        return Failure(
            400, "no_image", "Choose an image first",
            f"Upload a photo of one clothing item (PNG, JPEG, WebP, GIF, BMP or TIFF, up to {limit}) or pick a sample.",
        )
    if isinstance(exc, UnknownSampleError):
        return Failure(400, "unknown_sample", "Unknown sample", "Pick one of the sample images shown on the page.")
    if isinstance(exc, PreprocessError):
        return Failure(400, "invalid_image", "That file is not an image the model can read", sentence(str(exc)))
    if isinstance(exc, CloudError):
        return Failure(502, "endpoint_error", "The model could not answer", f"{exc.message} Try again in a moment.")
    ref = f" (request id {rid})" if rid else ""
    return Failure(500, "internal_error", "Something went wrong", f"The error was logged{ref}; please try again.")


def sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
