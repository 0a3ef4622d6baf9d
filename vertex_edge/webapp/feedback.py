""""Was this right?": the correct label of a prediction, stored against its request id through
:class:`vertex_edge.monitoring.feedback.FeedbackStore` at ``EDGE_FEEDBACK_URI`` (a folder or
``gs://``), one writer thread, nothing about the image. ``edge.py monitor`` joins the answers to
the captured predictions by request id."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from pydantic import ValidationError

from vertex_edge.errors import EdgeError, UsageError
from vertex_edge.monitoring.feedback import FeedbackStore, parse_feedback, short_repr
from vertex_edge.monitoring.sinks import make_sink
from vertex_edge.webapp.limits import WorkPool
from vertex_edge.webapp.logs import BodyTooLarge
from vertex_edge.webapp.models import FeedbackRequest
from vertex_edge.webapp.settings import WebappSettings

log = logging.getLogger(__name__)

#: bytes of a feedback body (an answer is about 100)
MAX_FEEDBACK_BYTES = 16 * 1024
#: answers waiting for the writer thread before more are refused (503)
MAX_QUEUED = 64


class FeedbackOff(Exception):
    """This deployment collects no feedback (404)."""


class FeedbackInvalid(ValueError):
    """The answer is not one (400); the message names what is wrong."""


class FeedbackFailed(Exception):
    """The store could not be written (502); details are in the log."""


class FeedbackService:
    """The store and its one writer thread (LocalSink appends are not thread-safe)."""

    def __init__(self, store: FeedbackStore, uri: str) -> None:
        self.store = store
        self.uri = uri
        self.pool = WorkPool("feedback", 1, max_queued=MAX_QUEUED)

    def start(self) -> None:
        self.pool.start()

    def close(self) -> None:
        self.pool.close()
        self.store.close()

    async def record(self, request: FeedbackRequest, labels: Sequence[str]) -> dict[str, Any]:
        try:
            answer = parse_feedback(
                request.request_id, request.label, labels, instance=request.instance, predicted=request.predicted
            )
        except UsageError as exc:
            raise FeedbackInvalid(exc.message) from None
        try:
            return await self.pool.run(self.store.add, answer)
        except (EdgeError, OSError) as exc:
            log.warning("cannot store a feedback answer at %s: %s", self.uri, getattr(exc, "message", exc))
            raise FeedbackFailed() from None


def build_feedback(settings: WebappSettings, labels: Sequence[str]) -> FeedbackService | None:
    """The service the settings ask for (``None``: feedback is off). Builds the GCS client for
    a ``gs://`` location (credentials from the environment), so call it in the lifespan."""
    if settings.feedback_uri is None:
        return None
    sink = make_sink(settings.feedback_uri, kind="feedback")
    return FeedbackService(FeedbackStore(sink, labels), settings.feedback_uri)


async def read_feedback_request(stream: AsyncIterator[bytes]) -> FeedbackRequest:
    """The JSON body, at most :data:`MAX_FEEDBACK_BYTES`; :class:`FeedbackInvalid` naming the
    first problem."""
    body = bytearray()
    async for chunk in stream:
        body += chunk
        if len(body) > MAX_FEEDBACK_BYTES:
            raise BodyTooLarge(MAX_FEEDBACK_BYTES)
    try:
        data = json.loads(body)
    except ValueError:
        raise FeedbackInvalid(
            'the body is not JSON; expected {"request_id": "...", "instance": 0, "label": "Sneaker"}'
        ) from None
    try:
        return FeedbackRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        got = "" if first.get("type") == "missing" or where == "body" else f" (got {short_repr(first.get('input'))})"
        raise FeedbackInvalid(f"{where}: {first.get('msg', 'invalid')}{got}") from None
