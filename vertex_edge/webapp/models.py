"""The web app's JSON API, as pydantic models: what ``/api/predict`` and ``/healthz`` answer and the
one error shape (they are also the OpenAPI document)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ClassProbability(BaseModel):
    class_id: int = Field(description="0-9, the Fashion-MNIST class id")
    label: str = Field(description="the class name")
    probability: float = Field(ge=0, le=1)


class Timings(BaseModel):
    preprocess_ms: float = Field(description="decoding and preprocessing the upload in this app")
    endpoint_ms: float = Field(description="the prediction endpoint's round trip")
    total_ms: float


class PredictResponse(BaseModel):
    """The endpoint's prediction for the uploaded image."""

    label: str = Field(description="the predicted class name", examples=["Sneaker"])
    class_id: int = Field(description="the predicted class id (0-9)", examples=[7])
    confidence: float = Field(ge=0, le=1, description="the predicted class's probability")
    probabilities: list[ClassProbability] = Field(description="all 10 classes, in class-id order")
    model_version: str = Field(description="the model version that answered")
    model_input_png: str = Field(description="base64 PNG of the 28x28 image the model saw (after preprocessing)")
    timings: Timings


class ErrorResponse(BaseModel):
    """Every error the API returns has this shape."""

    error: str = Field(
        description="a stable code: no_image, invalid_image, too_large, invalid_request, "
        "endpoint_error, not_found, internal_error",
        examples=["invalid_image"],
    )
    message: str = Field(description="what was wrong and what to do, for people")
    request_id: str | None = Field(default=None, description="quote it when reporting a problem")


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    version: str
    backend: str = Field(description="'http' (a prediction server) or 'vertex' (a Vertex AI endpoint)")


API_ERRORS = {
    400: {"model": ErrorResponse, "description": "No image, or a file that is not a readable image "
          "(corrupt, truncated, unsupported format, or too many pixels - a decompression bomb)"},
    413: {"model": ErrorResponse, "description": "The upload is over the size limit (5 MB by default)"},
    422: {"model": ErrorResponse, "description": "The request is not multipart/form-data with a 'file' field"},
    500: {"model": ErrorResponse, "description": "An unexpected error in this app (logged with the request id)"},
    502: {"model": ErrorResponse, "description": "The prediction endpoint is down, timed out, or answered an error"},
}
