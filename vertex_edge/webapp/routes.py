"""The web app's routes: the page (upload or sample), the JSON API and the health check. Each
reaches the settings, the samples and the prediction client through the app's state, by the
dependencies below (tests replace the client with ``app.dependency_overrides[get_client]``)."""

from __future__ import annotations

import base64
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from vertex_edge import __version__
from vertex_edge.errors import CloudError
from vertex_edge.preprocess import PreprocessError
from vertex_edge.webapp.client import PredictionClient
from vertex_edge.webapp.logs import BodyTooLarge, request_id
from vertex_edge.webapp.models import API_ERRORS, ClassProbability, Health, PredictResponse, Timings
from vertex_edge.webapp.predict import Failure, NoImageError, Outcome, UnknownSampleError, failure_for, predict_image
from vertex_edge.webapp.samples import Sample
from vertex_edge.webapp.settings import WebappSettings
from vertex_edge.webapp.views import error_response, page

log = logging.getLogger(__name__)

router = APIRouter()


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
    request.state.log_fields = {
        "source": source,
        "label": outcome.prediction.label,
        "confidence": round(outcome.prediction.confidence, 4),
        "model_version": outcome.prediction.model_version,
        "preprocess_ms": round(outcome.preprocess_ms, 2),
        "endpoint_ms": round(outcome.endpoint_ms, 2),
    }


async def run_prediction(
    request: Request, data: bytes, client: PredictionClient, settings: WebappSettings
) -> Outcome | Failure:
    try:
        return await predict_image(data, client, settings)
    except (PreprocessError, CloudError) as exc:
        return failure_for(exc, settings)
    except Exception:  # noqa: BLE001 - logged with its traceback; the client gets a generic 500
        rid = request_id(request.scope)
        log.exception("prediction failed unexpectedly", extra={"fields": {"request_id": rid}})
        return failure_for(RuntimeError(), settings, rid)


async def read_upload(file: UploadFile, settings: WebappSettings) -> bytes:
    data = await file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise BodyTooLarge(settings.max_upload_bytes, file.size)
    return data


@router.get("/", include_in_schema=False)
async def index(request: Request) -> Response:
    return page(request)


@router.post("/", include_in_schema=False)
async def page_predict(
    request: Request,
    client: ClientDep,
    settings: SettingsDep,
    file: Annotated[UploadFile | None, File()] = None,
    sample: Annotated[str | None, Form(max_length=100)] = None,
) -> Response:
    chosen: Sample | None = None
    try:
        if sample:
            chosen = request.app.state.samples.get(sample)
            if chosen is None:
                raise UnknownSampleError(sample)
            data = await run_in_threadpool(chosen.path.read_bytes)
        elif file is not None and (file.filename or file.size):
            data = await read_upload(file, settings)
        else:
            raise NoImageError()
    except (NoImageError, UnknownSampleError) as exc:
        return error_response(request, failure_for(exc, settings))
    result = await run_prediction(request, data, client, settings)
    if isinstance(result, Failure):
        return error_response(request, result)
    log_prediction(request, result, f"sample:{chosen.id}" if chosen else "upload")
    return page(request, outcome=result, sample=chosen)


@router.post(
    "/api/predict", response_model=PredictResponse, responses=API_ERRORS, summary="Classify a clothing image",
    tags=["predictions"],
)  # fmt: skip
async def api_predict(
    request: Request,
    client: ClientDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="the image: PNG, JPEG, WebP, GIF, BMP or TIFF of one clothing item")],
) -> Any:
    """Preprocess the image exactly as the model expects, ask the deployed endpoint, and return
    the predicted label, all class probabilities, the 28x28 image the model saw and the model
    version that answered."""
    result = await run_prediction(request, await read_upload(file, settings), client, settings)
    if isinstance(result, Failure):
        return error_response(request, result)
    log_prediction(request, result, "api")
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
        timings=Timings(
            preprocess_ms=round(result.preprocess_ms, 3),
            endpoint_ms=round(result.endpoint_ms, 3),
            total_ms=round(result.total_ms, 3),
        ),
    )
    return JSONResponse(body.model_dump(), headers={"cache-control": "no-store"})


@router.get("/healthz", response_model=Health, summary="Liveness and readiness", tags=["health"])
async def healthz(settings: SettingsDep) -> Health:
    """The app is up. It does not call the endpoint, so an endpoint outage does not restart
    the app's pods (the page explains the outage instead)."""
    return Health(status="ok", version=__version__, backend=settings.backend)
