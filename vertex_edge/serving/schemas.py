"""Response models and the request body schema, for the OpenAPI document.

Requests are parsed by hand (orjson + :mod:`vertex_edge.preprocess`), not by pydantic: a
64-image request holds 50,000 numbers and per-field validation would dominate the latency.
These models describe the API exactly, so clients (and schemathesis) can rely on them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class OodScore(BaseModel):
    score: float = Field(description="how far the input is from the training images (higher: further)")
    flag: bool = Field(description="true when the score is over the threshold calibrated at training time (out of distribution)")


class Prediction(BaseModel):
    label: str = Field(description="class name, from the model card's labels")
    class_id: int = Field(ge=0, description="index of the label")
    probabilities: list[float] = Field(description="one probability per label, index = class id")
    request_id: str = Field(description="the request's id (the same on every prediction of one request)")
    ood: OodScore | None = Field(
        default=None, description="out-of-distribution score and flag (only for a model with a monitor output)"
    )
    labels: list[str] | None = Field(
        default=None, description="every class's name, index = class id (only when parameters.labels is true)"
    )


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    model_version: str = Field(description="the model card's version of the model that answered")


class CaptureStats(BaseModel):
    enabled: bool = Field(description="whether predictions are captured (EDGE_CAPTURE_URI set)")
    sample_rate: float | None = Field(default=None, description="share of instances captured")
    queued: int | None = Field(default=None, description="records waiting for the writer thread")
    queue_size: int | None = Field(default=None, description="queue capacity; records beyond it are dropped")
    captured: int | None = Field(default=None, description="records accepted into the queue since the start")
    dropped: int | None = Field(default=None, description="records dropped because the queue was full")
    written: int | None = Field(default=None, description="records the sink stored")
    failed: int | None = Field(default=None, description="records lost because the sink failed")


class ErrorDetail(BaseModel):
    instance: int = Field(ge=0, description="index of the instance in 'instances'")
    message: str


class ErrorBody(BaseModel):
    code: int
    status: str
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    error: ErrorBody


class HealthResponse(BaseModel):
    status: str = Field(description="'ok' when ready; 'loading' or 'failed' (with HTTP 503) otherwise")
    model_version: str | None = Field(default=None, description="the model card's version of the served model")
    registry_version: str | None = Field(default=None, description="the local registry version served")
    target_version: str | None = Field(
        default=None, description="the registry version the followed endpoint points at (None: not following)"
    )
    error: str | None = Field(
        default=None,
        description="why loading failed: with 503, the first model; with 200, the target version "
        "(the previous model still serves)",
    )


def _pixels(count: int) -> dict[str, Any]:
    number = {"type": "number", "minimum": 0, "maximum": 255}
    return {"type": "array", "minItems": count, "maxItems": count, "items": number}


def request_schema(max_instances: int) -> dict[str, Any]:
    """JSON schema of ``{"instances": [...], "parameters": {...}}``."""
    instance = {
        "oneOf": [
            {
                "title": "28x28 nested list",
                "type": "array",
                "minItems": 28,
                "maxItems": 28,
                "items": _pixels(28),
            },
            {"title": "flat list of 784 numbers", **_pixels(784)},
            {
                "title": "base64 image",
                "type": "object",
                "required": ["b64"],
                "additionalProperties": False,
                "properties": {
                    "b64": {
                        "type": "string",
                        "minLength": 1,
                        "description": "base64 PNG or JPEG (up to the pixel limits: see the 413 answer)",
                    }
                },
            },
        ]
    }
    return {
        "type": "object",
        "required": ["instances"],
        "additionalProperties": False,
        "properties": {
            "instances": {"type": "array", "minItems": 1, "maxItems": max_instances, "items": instance},
            "parameters": {
                "anyOf": [
                    {
                        "type": "object",
                        "properties": {"labels": {"type": "boolean", "description": "also answer every class's name"}},
                    },
                    {"type": "null"},
                ],
                "description": "optional; 'labels': true adds every class's name to each prediction, other keys are ignored",
            },
        },
    }


def error_responses() -> dict[int | str, dict[str, Any]]:
    described = {
        400: "invalid request: the message names the instance index and the problem "
        "(an image over the per-image pixel limit, EDGE_MAX_IMAGE_PIXELS, names its index too)",
        408: "the request's headers or body did not arrive in time (EDGE_HTTP_HEADER_TIMEOUT_S, "
        "EDGE_HTTP_BODY_TIMEOUT_S; also a body shorter than its Content-Length); the connection is closed",
        413: "body over the size limit (1.5 MB, Vertex AI's), or b64 images decoding to more pixels "
        "than the per-request budget (EDGE_MAX_REQUEST_PIXELS), checked before decoding",
        415: "body is not sent as application/json",
        431: "request line and headers over EDGE_HTTP_MAX_HEADER_BYTES, or more than EDGE_HTTP_MAX_HEADERS "
        "header lines; the connection is closed",
        503: "no model loaded yet, or the server is at its connection or request limit "
        "(EDGE_HTTP_MAX_CONNECTIONS, EDGE_HTTP_MAX_REQUESTS): retry after Retry-After seconds",
        504: "the request could not be answered within its deadline (EDGE_REQUEST_DEADLINE_S): "
        "retry after Retry-After seconds",
    }
    retry = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
    return {
        code: {"model": ErrorResponse, "description": text, **({"headers": retry} if code in (503, 504) else {})}
        for code, text in described.items()
    }
