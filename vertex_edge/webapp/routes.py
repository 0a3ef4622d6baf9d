"""The web app's routes: the page (upload or sample), the JSON API (predict, feedback) and the
health check. Each reaches the settings, the samples, the decode pool and the prediction client
through the app's state, by the dependencies below (tests replace the client with
``app.dependency_overrides[get_client]``).

An upload is admitted (at most ``max_pending`` at once, else 503 before its body is read), read
into memory with its size capped while it streams (413), decoded in the bounded pool within the
pixel budget (400), and answered within the request deadline (408/503/504)."""

from __future__ import annotations

import base64
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from vertex_edge import __version__
from vertex_edge.httpserver import TIMED_OUT
from vertex_edge.webapp.client import Prediction, PredictionClient
from vertex_edge.webapp.failures import EXPECTED, NoImageError, UnknownSampleError, failure_for
from vertex_edge.webapp.feedback import FeedbackOff, read_feedback_request
from vertex_edge.webapp.limits import Deadline, DeadlineExceeded
from vertex_edge.webapp.logs import request_id
from vertex_edge.webapp.models import (
    API_ERRORS,
    FEEDBACK_ERRORS,
    ClassProbability,
    FeedbackRequest,
    FeedbackResponse,
    Health,
    OutOfDistribution,
    PredictResponse,
    Timings,
)
from vertex_edge.webapp.predict import Outcome, predict_image
from vertex_edge.webapp.samples import Sample
from vertex_edge.webapp.settings import WebappSettings
from vertex_edge.webapp.upload import FormError, UploadForm, read_form
from vertex_edge.webapp.views import error_response, page

log = logging.getLogger(__name__)

router = APIRouter()

#: the multipart body of ``POST /api/predict`` (read by :func:`read_form`, not by FastAPI)
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "the image: PNG, JPEG, WebP, GIF, BMP or TIFF of one clothing item",
                        }
                    },
                }
            }
        },
    }
}
FEEDBACK_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": FeedbackRequest.model_json_schema()}},
    }
}


def get_settings(request: Request) -> WebappSettings:
    return request.app.state.settings


def get_client(request: Request) -> PredictionClient:
    client = request.app.state.client
    if client is None:
        raise RuntimeError("the prediction client was not started (the app's lifespan did not run)")
    return client


ClientDep = Annotated[PredictionClient, Depends(get_client)]
SettingsDep = Annotated[WebappSettings, Depends(get_settings)]


def log_prediction(request: Request, outcome: Outcome, source: str) -> None:
    pred = outcome.prediction
    request.state.log_fields = {
        "source": source,
        "label": pred.label,
        "confidence": round(pred.confidence, 4),
        "model_version": pred.model_version,
        "preprocess_ms": round(outcome.preprocess_ms, 2),
        "endpoint_ms": round(outcome.endpoint_ms, 2),
        **({"prediction_id": pred.request_id} if pred.request_id else {}),
        **({"ood": pred.ood.flag} if pred.ood else {}),
    }
    remember_labels(request, pred)


def remember_labels(request: Request, pred: Prediction) -> None:
    """The class names the endpoint answers with: what feedback labels are checked against."""
    if pred.named:
        request.app.state.labels = pred.labels


async def _upload(request: Request, settings: WebappSettings, deadline: Deadline) -> UploadForm:
    return await read_form(
        request.stream(), request.headers.get("content-type"), file_field="file",
        max_file_bytes=settings.max_upload_bytes, deadline=deadline,
    )  # fmt: skip


async def _image_of(
    request: Request, settings: WebappSettings, deadline: Deadline
) -> tuple[bytes | bytearray, Sample | None]:
    """The page's form: an upload, or one of the samples."""
    form = await _upload(request, settings, deadline)
    if form.fields.get("sample"):
        chosen = request.app.state.samples.get(form.fields["sample"])
        if chosen is None:
            raise UnknownSampleError(form.fields["sample"])
        return await run_in_threadpool(chosen.path.read_bytes), chosen
    if form.file is not None and (form.filename or form.file):  # an empty file input sends neither
        return form.file, None
    raise NoImageError()


async def _predict(request: Request, client: PredictionClient, settings: WebappSettings, api: bool) -> Any:
    state = request.app.state
    if state.decoder is None:
        raise RuntimeError("the decode pool was not started (the app's lifespan did not run)")
    deadline = Deadline(settings.deadline_s)
    try:
        with state.admission.enter():
            if api:
                form = await _upload(request, settings, deadline)
                if form.file is None:
                    raise FormError("send the image as multipart/form-data field 'file'")
                data, sample = form.file, None
            else:
                data, sample = await _image_of(request, settings, deadline)
            outcome = await predict_image(data, client, settings, state.decoder, deadline)
    except ClientDisconnect as exc:
        if request.scope.get(TIMED_OUT):  # the HTTP server cut a trickling body off (and answered 408)
            return error_response(request, failure_for(DeadlineExceeded("upload", settings.http.body_timeout_s), settings))
        return error_response(request, failure_for(exc, settings))
    except EXPECTED as exc:
        return error_response(request, failure_for(exc, settings))
    except Exception:  # noqa: BLE001 - logged with its traceback; the client gets a generic 500
        rid = request_id(request.scope)
        log.exception("prediction failed unexpectedly", extra={"fields": {"request_id": rid}})
        return error_response(request, failure_for(RuntimeError(), settings, rid))
    log_prediction(request, outcome, "api" if api else (f"sample:{sample.id}" if sample else "upload"))
    return outcome if api else page(request, outcome=outcome, sample=sample)


@router.get("/", include_in_schema=False)
async def index(request: Request) -> Response:
    return page(request)


@router.post("/", include_in_schema=False)
async def page_predict(request: Request, client: ClientDep, settings: SettingsDep) -> Response:
    return await _predict(request, client, settings, api=False)


@router.post(
    "/api/predict", response_model=PredictResponse, responses=API_ERRORS, summary="Classify a clothing image",
    tags=["predictions"], openapi_extra=UPLOAD_BODY,
)  # fmt: skip
async def api_predict(request: Request, client: ClientDep, settings: SettingsDep) -> Any:
    """Preprocess the image exactly as the model expects, ask the deployed endpoint, and return
    the predicted label, all class probabilities, the 28x28 image the model saw, the model
    version that answered, the prediction's request id (for feedback) and, when the model has
    the monitor, whether the image is out of distribution (then the label is probably meaningless)."""
    result = await _predict(request, client, settings, api=True)
    if isinstance(result, Response):
        return result
    pred = result.prediction
    body = PredictResponse(
        label=pred.label,
        class_id=pred.class_id,
        confidence=pred.confidence,
        probabilities=[
            ClassProbability(class_id=i, label=name, probability=p)
            for i, (name, p) in enumerate(zip(pred.labels, pred.probabilities, strict=True))
        ],
        model_version=pred.model_version,
        model_input_png=base64.b64encode(result.model_input_png).decode(),
        request_id=pred.request_id,
        ood=OutOfDistribution(score=pred.ood.score, flag=pred.ood.flag) if pred.ood else None,
        timings=Timings(
            preprocess_ms=round(result.preprocess_ms, 3),
            endpoint_ms=round(result.endpoint_ms, 3),
            total_ms=round(result.total_ms, 3),
        ),
    )
    return JSONResponse(body.model_dump(), headers={"cache-control": "no-store"})


@router.post(
    "/api/feedback", status_code=201, response_model=FeedbackResponse, responses=FEEDBACK_ERRORS,
    summary="Say what a prediction should have been", tags=["feedback"], openapi_extra=FEEDBACK_BODY,
)  # fmt: skip
async def api_feedback(request: Request, settings: SettingsDep) -> Any:
    """Record the correct label of a prediction ("Was this right?"), against the request id the
    prediction answered with. Only the request id, the label and the time are kept - no image.
    404 when this deployment collects no feedback."""
    service = request.app.state.feedback
    try:
        if service is None:
            raise FeedbackOff()
        answer = await read_feedback_request(request.stream())
        record = await service.record(answer, request.app.state.labels)
    except EXPECTED as exc:
        return error_response(request, failure_for(exc, settings))
    request.state.log_fields = {"feedback_for": record["request_id"], "label": record["label"]}
    body = FeedbackResponse(status="recorded", **{k: record[k] for k in ("request_id", "instance", "class_id", "label")})
    return JSONResponse(body.model_dump(), status_code=201, headers={"cache-control": "no-store"})


@router.get("/healthz", response_model=Health, summary="Liveness and readiness", tags=["health"])
async def healthz(settings: SettingsDep) -> Health:
    """The app is up. It does not call the endpoint, so an endpoint outage does not restart
    the app's pods (the page explains the outage instead)."""
    return Health(status="ok", version=__version__, backend=settings.backend)

