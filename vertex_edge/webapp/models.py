"""The web app's JSON API, as pydantic models: what ``/api/predict`` and ``/healthz`` answer and the
one error shape (they are also the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ClassProbability(BaseModel):
    class_id: int = Field(description="0-9, the Fashion-MNIST class id")
    label: str = Field(description="the class name")
    probability: float = Field(ge=0, le=1)


class Timings(BaseModel):
    preprocess_ms: float = Field(description="decoding and preprocessing the upload in this app")
    endpoint_ms: float = Field(description="the prediction endpoint's round trip")
    total_ms: float


class OutOfDistribution(BaseModel):
    """The prediction server's out-of-distribution verdict (only when the model has the monitor)."""

    score: float = Field(description="how far the image is from the training data (higher: farther)")
    flag: bool = Field(
        description="true when the image is unlike the clothing photos the model learned from: "
        "the label is then probably meaningless (the page says it is not sure this is a clothing item)"
    )


class PredictResponse(BaseModel):
    """The endpoint's prediction for the uploaded image."""

    label: str = Field(description="the predicted class name", examples=["Sneaker"])
    class_id: int = Field(description="the predicted class id (0-9)", examples=[7])
    confidence: float = Field(ge=0, le=1, description="the predicted class's probability")
    probabilities: list[ClassProbability] = Field(description="all 10 classes, in class-id order")
    model_version: str = Field(description="the model version that answered")
    model_input_png: str = Field(description="base64 PNG of the 28x28 image the model saw (after preprocessing)")
    request_id: str | None = Field(
        default=None, description="the prediction server's id for this prediction: quote it in POST /api/feedback"
    )
    ood: OutOfDistribution | None = Field(
        default=None, description="absent when the deployed model has no out-of-distribution monitor"
    )
    timings: Timings


class FeedbackRequest(BaseModel):
    """A "Was this right?" answer: the correct label of one prediction."""

    request_id: str = Field(description="the request_id of the prediction", examples=["4f1c2a9e0b7d4e21"])
    instance: int = Field(default=0, ge=0, description="which image of that request (the web app sends one: 0)")
    label: str | int = Field(description="the correct class: its name or its id 0-9", examples=["Sneaker"])
    predicted: int | None = Field(default=None, ge=0, description="the class the model predicted (optional)")


class FeedbackResponse(BaseModel):
    """What was stored: the label against the request id, and nothing else (no image)."""

    status: str = Field(examples=["recorded"])
    request_id: str
    instance: int
    class_id: int
    label: str


class ErrorResponse(BaseModel):
    """Every error the API returns has this shape."""

    error: str = Field(
        description="a stable code: no_image, unknown_sample, invalid_image, too_large, invalid_request, "
        "upload_timeout, endpoint_error, busy, deadline, invalid_feedback, feedback_off, not_found, internal_error",
        examples=["invalid_image"],
    )
    message: str = Field(description="what was wrong and what to do, for people")
    request_id: str | None = Field(default=None, description="quote it when reporting a problem")


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    version: str
    backend: str = Field(description="'http' (a prediction server) or 'vertex' (a Vertex AI endpoint)")


API_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "No image, or a file that is not a readable image "
          "(corrupt, truncated, unsupported format, or more pixels than the limit - checked from the header)"},
    408: {"model": ErrorResponse, "description": "The upload did not arrive within the request deadline"},
    413: {"model": ErrorResponse, "description": "The upload is over the size limit (5 MB by default); "
          "refused while it streams in"},
    422: {"model": ErrorResponse, "description": "The request is not multipart/form-data with a 'file' field"},
    500: {"model": ErrorResponse, "description": "An unexpected error in this app (logged with the request id)"},
    502: {"model": ErrorResponse, "description": "The prediction endpoint is down, timed out, answered an error, "
          "or sent an answer over the response size limit"},
    503: {"model": ErrorResponse, "description": "The app is at capacity (uploads in progress, or no decoder free "
          "within the deadline); retry after the Retry-After header's seconds",
          "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}},
    504: {"model": ErrorResponse, "description": "No answer within the request deadline"},
}

FEEDBACK_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Not JSON, a request id that is not one, or an unknown label "
          "(the message names it and lists the labels)"},
    404: {"model": ErrorResponse, "description": "This deployment does not collect feedback (EDGE_FEEDBACK_URI unset)"},
    413: {"model": ErrorResponse, "description": "The body is over 16 KB"},
    502: {"model": ErrorResponse, "description": "The feedback store could not be written"},
    503: {"model": ErrorResponse, "description": "Too many answers are waiting to be stored; retry"},
}
