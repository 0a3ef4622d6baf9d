"""The web app: a server-rendered page to classify a clothing image, a JSON API for the same
prediction, and a health route.

``create_app(settings)`` builds the app; nothing happens at import. The prediction client is
built in the lifespan (or injected), and reached by routes through the :func:`get_client`
dependency, so tests replace it with ``app.dependency_overrides[get_client]``.

Every failure - a file that is not an image, an upload over the size limit, a decompression
bomb, an endpoint that is down, slow or answers an error - gives a clear message on the page and
a 4xx/502 JSON body on the API; no stack trace and no internal address reaches the client.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from vertex_edge import __version__
from vertex_edge.errors import CloudError
from vertex_edge.preprocess import PreprocessError, array_to_png, decode_image, image_to_array
from vertex_edge.webapp.client import CLASS_NAMES, Prediction, PredictionClient, build_client
from vertex_edge.webapp.logs import BodyLimitMiddleware, BodyTooLarge, RequestLogMiddleware, request_id
from vertex_edge.webapp.samples import Sample, load_samples
from vertex_edge.webapp.settings import WebappSettings

log = logging.getLogger(__name__)

_HERE = Path(__file__).parent
#: Multipart framing allowed on top of the file itself before the body is refused outright.
_MULTIPART_SLACK = 64 * 1024
_FRAGMENT_HEADER = "x-fragment"


# --------------------------------------------------------------------------- API models


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


_ERRORS = {
    400: {"model": ErrorResponse, "description": "No image, or a file that is not a readable image "
          "(corrupt, truncated, unsupported format, or too many pixels - a decompression bomb)"},
    413: {"model": ErrorResponse, "description": "The upload is over the size limit (5 MB by default)"},
    422: {"model": ErrorResponse, "description": "The request is not multipart/form-data with a 'file' field"},
    500: {"model": ErrorResponse, "description": "An unexpected error in this app (logged with the request id)"},
    502: {"model": ErrorResponse, "description": "The prediction endpoint is down, timed out, or answered an error"},
}


# --------------------------------------------------------------------------- the prediction


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
        return Failure(400, "invalid_image", "That file is not an image the model can read", _sentence(str(exc)))
    if isinstance(exc, CloudError):
        return Failure(502, "endpoint_error", "The model could not answer", f"{exc.message} Try again in a moment.")
    ref = f" (request id {rid})" if rid else ""
    return Failure(500, "internal_error", "Something went wrong", f"The error was logged{ref}; please try again.")


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


# --------------------------------------------------------------------------- dependencies


def get_settings(request: Request) -> WebappSettings:
    return request.app.state.settings


def get_client(request: Request) -> PredictionClient:
    client = request.app.state.client
    if client is None:
        raise RuntimeError("the prediction client was not started (the app's lifespan did not run)")
    return client


SettingsDep = Annotated[WebappSettings, Depends(get_settings)]
ClientDep = Annotated[PredictionClient, Depends(get_client)]


# --------------------------------------------------------------------------- views


def _pct(p: float) -> str:
    if p >= 0.9995:
        return "100%"
    if 0 < p < 0.001:
        return "<0.1%"
    return f"{p * 100:.1f}%"


def _result_view(outcome: Outcome, root: str, sample: Sample | None) -> dict[str, Any]:
    pred = outcome.prediction
    bars = [
        {
            "name": CLASS_NAMES[i],
            "pct": _pct(p),
            "width": round(p * 100, 2),
            "top": i == pred.class_id,
        }
        for i, p in enumerate(pred.probabilities)
    ]
    return {
        "label": pred.label,
        "class_id": pred.class_id,
        "confidence": _pct(pred.confidence),
        "bars": bars,
        "model_version": pred.model_version,
        "model_input_src": "data:image/png;base64," + base64.b64encode(outcome.model_input_png).decode(),
        "original_src": f"{root}/static/{sample.static_path}" if sample else None,
        "sample_label": sample.label if sample else None,
        "correct": (sample.class_id == pred.class_id) if sample else None,
        "endpoint_ms": round(outcome.endpoint_ms),
        "total_ms": round(outcome.total_ms),
    }


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith(("/api/", "/healthz", "/openapi")) or "application/json" in request.headers.get(
        "accept", ""
    ).split(";")[0]


# --------------------------------------------------------------------------- the app


def create_app(settings: WebappSettings | None = None, *, client: PredictionClient | None = None) -> FastAPI:
    """Build the app. ``settings`` default to the environment (validated here, at start-up);
    ``client`` defaults to the one the settings choose, built when the app starts."""
    settings = settings if settings is not None else WebappSettings.from_env()
    samples = load_samples()
    templates = Jinja2Templates(directory=str(_HERE / "templates"))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = None
        if app.state.client is None:
            owned = app.state.client = build_client(settings)
        log.info(
            "web app started",
            extra={"fields": {"version": __version__, "backend": settings.backend,
                              "endpoint": settings.describe_endpoint()}},
        )
        try:
            yield
        finally:
            if owned is not None:
                await owned.aclose()
                app.state.client = None

    app = FastAPI(
        title="vertex-edge web app",
        summary="Classify a clothing image with the deployed Fashion-MNIST model.",
        description=(
            "Upload an image to `POST /api/predict` as multipart/form-data field `file` "
            f"(PNG, JPEG, WebP, GIF, BMP or TIFF, up to {settings.max_upload_mb:g} MB). The app preprocesses it "
            "the way Fashion-MNIST images were made (28x28 grayscale, light background inverted) and asks "
            "the deployed endpoint. Errors are JSON `{error, message, request_id}`."
        ),
        version=__version__,
        debug=False,
        docs_url=None,  # Swagger UI/ReDoc load assets from a CDN; the schema is at /openapi.json
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.client = client
    app.state.samples = samples
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes + _MULTIPART_SLACK)
    app.add_middleware(RequestLogMiddleware)
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")

    def page(
        request: Request,
        *,
        outcome: Outcome | None = None,
        failure: Failure | None = None,
        sample: Sample | None = None,
        status: int = 200,
    ) -> Response:
        root = request.scope.get("root_path", "")
        context = {
            "root": root,
            "samples": list(samples.values()),
            "max_upload_mb": f"{settings.max_upload_mb:g}",
            "max_upload_bytes": settings.max_upload_bytes,
            "backend_label": "a Vertex AI endpoint" if settings.backend == "vertex" else "the local prediction server",
            "result": _result_view(outcome, root, sample) if outcome else None,
            "failure": failure,
            "version": __version__,
        }
        fragment = request.headers.get(_FRAGMENT_HEADER) == "1"
        response = templates.TemplateResponse(
            request, "_result.html" if fragment else "index.html", context, status_code=status
        )
        if outcome is not None or failure is not None:
            response.headers["cache-control"] = "no-store"
        return response

    def error_response(request: Request, failure: Failure) -> Response:
        rid = request_id(request.scope)
        request.state.log_fields = {"error": failure.code}
        if _wants_json(request):
            body = ErrorResponse(error=failure.code, message=failure.message, request_id=rid)
            return JSONResponse(body.model_dump(), status_code=failure.status, headers={"cache-control": "no-store"})
        if request.url.path.startswith("/static/"):
            return PlainTextResponse(failure.message, status_code=failure.status)
        return page(request, failure=failure, status=failure.status)

    def log_prediction(request: Request, outcome: Outcome, source: str) -> None:
        request.state.log_fields = {
            "source": source,
            "label": outcome.prediction.label,
            "confidence": round(outcome.prediction.confidence, 4),
            "model_version": outcome.prediction.model_version,
            "preprocess_ms": round(outcome.preprocess_ms, 2),
            "endpoint_ms": round(outcome.endpoint_ms, 2),
        }

    async def run(request: Request, data: bytes, client: PredictionClient) -> Outcome | Failure:
        try:
            return await predict_image(data, client, settings)
        except (PreprocessError, CloudError) as exc:
            return failure_for(exc, settings)
        except Exception:  # noqa: BLE001 - logged with its traceback; the client gets a generic 500
            rid = request_id(request.scope)
            log.exception("prediction failed unexpectedly", extra={"fields": {"request_id": rid}})
            return failure_for(RuntimeError(), settings, rid)

    async def read_upload(file: UploadFile) -> bytes:
        data = await file.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise BodyTooLarge(settings.max_upload_bytes, file.size)
        return data

    # ------------------------------------------------------------------ routes

    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> Response:
        return page(request)

    @app.post("/", include_in_schema=False)
    async def page_predict(
        request: Request,
        client: ClientDep,
        file: Annotated[UploadFile | None, File()] = None,
        sample: Annotated[str | None, Form(max_length=100)] = None,
    ) -> Response:
        chosen: Sample | None = None
        try:
            if sample:
                chosen = samples.get(sample)
                if chosen is None:
                    raise UnknownSampleError(sample)
                data = await run_in_threadpool(chosen.path.read_bytes)
            elif file is not None and (file.filename or file.size):
                data = await read_upload(file)
            else:
                raise NoImageError()
        except (NoImageError, UnknownSampleError) as exc:
            return error_response(request, failure_for(exc, settings))
        result = await run(request, data, client)
        if isinstance(result, Failure):
            return error_response(request, result)
        log_prediction(request, result, f"sample:{chosen.id}" if chosen else "upload")
        return page(request, outcome=result, sample=chosen)

    @app.post(
        "/api/predict",
        response_model=PredictResponse,
        responses=_ERRORS,
        summary="Classify a clothing image",
        tags=["predictions"],
    )
    async def api_predict(
        request: Request,
        client: ClientDep,
        file: Annotated[
            UploadFile,
            File(description="the image: PNG, JPEG, WebP, GIF, BMP or TIFF of one clothing item"),
        ],
    ) -> Any:
        """Preprocess the image exactly as the model expects, ask the deployed endpoint, and return
        the predicted label, all 10 class probabilities, the 28x28 image the model saw and the
        model version that answered."""
        result = await run(request, await read_upload(file), client)
        if isinstance(result, Failure):
            return error_response(request, result)
        log_prediction(request, result, "api")
        pred = result.prediction
        body = PredictResponse(
            label=pred.label,
            class_id=pred.class_id,
            confidence=pred.confidence,
            probabilities=[
                ClassProbability(class_id=i, label=CLASS_NAMES[i], probability=p)
                for i, p in enumerate(pred.probabilities)
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

    @app.get("/healthz", response_model=Health, summary="Liveness and readiness", tags=["health"])
    async def healthz() -> Health:
        """The app is up. It does not call the endpoint, so an endpoint outage does not restart
        the app's pods (the page explains the outage instead)."""
        return Health(status="ok", version=__version__, backend=settings.backend)

    # ------------------------------------------------------------------ errors

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc, BodyTooLarge):
            return error_response(request, failure_for(exc, settings))
        codes = {404: ("not_found", "Page not found"), 405: ("method_not_allowed", "Method not allowed")}
        code, title = codes.get(exc.status_code, ("http_error", "Request failed"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        return error_response(request, Failure(exc.status_code, code, title, _sentence(detail)))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "header")]
            problems.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')}")
        message = (
            "Send the image as multipart/form-data field 'file' (" + "; ".join(problems[:3]) + ")."
        )
        return error_response(request, Failure(422, "invalid_request", "Invalid request", message))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        rid = request_id(request.scope)
        log.error("unhandled error", exc_info=exc, extra={"fields": {"request_id": rid}})
        return error_response(request, failure_for(exc, settings, rid))

    return app
