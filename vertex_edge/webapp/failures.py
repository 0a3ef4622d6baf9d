"""Every way a request can fail, in words a user can act on: :func:`failure_for` maps an
exception to a :class:`Failure` (status, stable code, title, message), shown as the page or as
the API's JSON by :func:`vertex_edge.webapp.views.error_response`. No stack trace and no
internal address reaches the client."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import ClientDisconnect

from vertex_edge.errors import CloudError
from vertex_edge.preprocess import PreprocessError
from vertex_edge.webapp.feedback import FeedbackFailed, FeedbackInvalid, FeedbackOff
from vertex_edge.webapp.limits import Busy, DeadlineExceeded
from vertex_edge.webapp.logs import BodyTooLarge
from vertex_edge.webapp.settings import WebappSettings
from vertex_edge.webapp.upload import FormError


@dataclass(frozen=True)
class Failure:
    """An error as the user sees it (``retry_after``: seconds, sent as ``Retry-After``)."""

    status: int
    code: str
    title: str
    message: str
    retry_after: int | None = None


class NoImageError(ValueError):
    """The form had neither a file nor a sample."""


class UnknownSampleError(ValueError):
    """The form named a sample that does not exist."""


def _too_large(exc: BodyTooLarge, limit: str) -> Failure:
    size = f" This one is {exc.size / (1024 * 1024):.1f} MB." if exc.size else ""
    return Failure(413, "too_large", "The image is too large", f"Uploads are limited to {limit}.{size}")


def _deadline(exc: DeadlineExceeded, limit: str) -> Failure:
    if exc.stage == "upload":
        return Failure(
            408, "upload_timeout", "The upload took too long",
            f"The image did not arrive within {exc.limit_s:g} seconds. Try a smaller image or a better connection.",
        )  # fmt: skip
    return Failure(
        504, "deadline", "The answer took too long",
        f"No answer within {exc.limit_s:g} seconds ({exc.stage} was still running). Try again in a moment.",
    )  # fmt: skip


def _busy(exc: Busy, limit: str) -> Failure:
    return Failure(
        503, "busy", "The web app is busy",
        f"It is at capacity ({exc.reason}). Try again in {exc.retry_after} seconds.", retry_after=exc.retry_after,
    )  # fmt: skip


_KINDS: list[tuple[type[BaseException], Callable[[BaseException, str], Failure]]] = [
    (BodyTooLarge, _too_large),  # type: ignore[list-item]
    (DeadlineExceeded, _deadline),  # type: ignore[list-item]
    (Busy, _busy),  # type: ignore[list-item]
    (NoImageError, lambda exc, limit: Failure(
        400, "no_image", "Choose an image first",
        f"Upload a photo of one clothing item (PNG, JPEG, WebP, GIF, BMP or TIFF, up to {limit}) or pick a sample.",
    )),
    (UnknownSampleError, lambda exc, limit: Failure(
        400, "unknown_sample", "Unknown sample", "Pick one of the sample images shown on the page.",
    )),
    (FormError, lambda exc, limit: Failure(422, "invalid_request", "Invalid request", sentence(str(exc)))),
    (PreprocessError, lambda exc, limit: Failure(
        400, "invalid_image", "That file is not an image the model can read", sentence(str(exc)),
    )),
    (CloudError, lambda exc, limit: Failure(
        502, "endpoint_error", "The model could not answer", f"{exc.message} Try again in a moment.",  # type: ignore[attr-defined]
    )),
    (ClientDisconnect, lambda exc, limit: Failure(
        400, "incomplete_upload", "The upload was interrupted", "The connection closed before the image arrived.",
    )),
    (FeedbackOff, lambda exc, limit: Failure(
        404, "feedback_off", "Feedback is off", "This deployment does not collect feedback labels "
        "(the operator has not set EDGE_FEEDBACK_URI).",
    )),
    (FeedbackInvalid, lambda exc, limit: Failure(
        400, "invalid_feedback", "Invalid answer", sentence(str(exc), capitalize=False),
    )),
    (FeedbackFailed, lambda exc, limit: Failure(
        502, "feedback_error", "The answer could not be stored", "It was logged; please try again later.",
    )),
]  # fmt: skip


def failure_for(exc: BaseException, settings: WebappSettings, rid: str | None = None) -> Failure:
    """Map an exception to what the user is told. Unknown exceptions become a generic 500."""
    limit = f"{settings.max_upload_mb:g} MB"
    for kind, make in _KINDS:
        if isinstance(exc, kind):
            return make(exc, limit)
    ref = f" (request id {rid})" if rid else ""
    return Failure(500, "internal_error", "Something went wrong", f"The error was logged{ref}; please try again.")


#: the exceptions :func:`failure_for` explains (anything else is a logged 500)
EXPECTED: tuple[type[BaseException], ...] = tuple(kind for kind, _ in _KINDS)


def sentence(text: str, *, capitalize: bool = True) -> str:
    """``text`` as a sentence: a capital first letter (unless it names a field) and a full stop."""
    text = text.strip()
    if capitalize:
        text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
