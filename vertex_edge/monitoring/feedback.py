"""Feedback labels: "Was this right?" answers, stored against the request id and joined later.

A feedback record is ``{"request_id", "instance", "label", "class_id", "time"}`` (plus the
predicted class when the caller knows it) - no image, no user data. The web app writes one
per answer through a :class:`FeedbackStore` (a sink of kind ``feedback``: local files or one
``gs://`` object per answer, partitioned by date like the records); ``edge.py monitor`` joins
them to the captured records by ``(request_id, instance)``, the newest answer winning.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vertex_edge.errors import UsageError
from vertex_edge.gcp.files import Files, join
from vertex_edge.monitoring.records import Window, list_partitions, parse_lines
from vertex_edge.monitoring.sinks import Sink

KIND = "feedback"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass(frozen=True)
class Feedback:
    request_id: str
    instance: int
    class_id: int
    label: str
    predicted: int | None = None


def parse_feedback(
    request_id: object, label: object, labels: Sequence[str], *, instance: object = 0, predicted: object = None
) -> Feedback:
    """Validate one answer; :class:`UsageError` says what is wrong (a 400 for the web app)."""
    if not isinstance(request_id, str) or not _REQUEST_ID.match(request_id):
        raise UsageError(
            f"request id {short_repr(request_id)}: expected the id the prediction answered with "
            "(1 to 128 letters, digits, '.', '_', ':' or '-')"
        )
    if not isinstance(instance, int) or isinstance(instance, bool) or instance < 0:
        raise UsageError(f"instance {short_repr(instance)}: expected a whole number >= 0")
    if isinstance(label, bool):
        label = None
    if isinstance(label, int) and 0 <= label < len(labels):
        class_id = label
    elif isinstance(label, str) and label in labels:
        class_id = list(labels).index(label)
    else:
        raise UsageError(f"label {short_repr(label)}: expected one of {', '.join(labels)} (or its index 0..{len(labels) - 1})")
    if predicted is not None and not (isinstance(predicted, int) and 0 <= predicted < len(labels)):
        predicted = None
    return Feedback(request_id, instance, class_id, labels[class_id], predicted)  # type: ignore[arg-type]


def short_repr(value: object) -> str:
    """``repr(value)``, cut to 60 characters (messages quote what they were given)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class FeedbackStore:
    """Writes feedback records to a sink (the web app keeps one for its lifetime)."""

    def __init__(self, sink: Sink, labels: Sequence[str]) -> None:
        self.sink = sink
        self.labels = list(labels)

    def add(self, feedback: Feedback, *, when: float | None = None) -> dict[str, Any]:
        """Store one answer (blocking I/O: call it off the event loop). Returns the record."""
        when = time.time() if when is None else when
        record: dict[str, Any] = {
            "request_id": feedback.request_id,
            "instance": feedback.instance,
            "class_id": feedback.class_id,
            "label": feedback.label,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)),
        }
        if feedback.predicted is not None:
            record["predicted"] = feedback.predicted
        self.sink.write((json.dumps(record, separators=(",", ":")) + "\n").encode(), when)
        return record

    def close(self) -> None:
        self.sink.close()


def read_feedback(uri: str, files: Files) -> dict[tuple[str, int], int]:
    """``{(request_id, instance): class_id}`` of every answer under ``uri`` (the newest wins)."""
    answers: list[dict[str, Any]] = []
    for names in list_partitions(uri, files).values():
        for name in names:
            answers.extend(parse_lines(files.read_bytes(join(uri, name)))[0])
    answers.sort(key=lambda r: str(r.get("time")))
    out: dict[tuple[str, int], int] = {}
    for answer in answers:
        class_id = answer.get("class_id")
        if isinstance(class_id, int):
            out[(str(answer["request_id"]), int(answer.get("instance") or 0))] = class_id
    return out


def join_labels(window: Window, feedback: dict[tuple[str, int], int]) -> np.ndarray:
    """The true class of each record of ``window`` (-1 where nobody answered)."""
    return np.array(
        [feedback.get((rid, int(i)), -1) for rid, i in zip(window.request_id, window.instance, strict=True)],
        dtype=np.int64,
    )
