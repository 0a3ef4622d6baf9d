"""The web app: a server-rendered page to classify a clothing image, a JSON API for the same
prediction, and a health route.

``create_app(settings)`` assembles the pieces - the routes (:mod:`~vertex_edge.webapp.routes`),
the page (:mod:`~vertex_edge.webapp.views`), the prediction (:mod:`~vertex_edge.webapp.predict`),
the limits (:mod:`~vertex_edge.webapp.limits`), feedback (:mod:`~vertex_edge.webapp.feedback`)
and the request-log and body-limit middleware; nothing happens at import. The prediction
client, the decode threads and the feedback store are made in the lifespan (the client may be
injected).

Every failure - a file that is not an image, an upload over the size limit, a decompression
bomb, an endpoint that is down, slow or answers an error, the app at capacity or past the
request deadline - gives a clear message on the page and a 4xx/5xx JSON body on the API
(:mod:`~vertex_edge.webapp.failures`); no stack trace and no internal address reaches the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from vertex_edge import __version__
from vertex_edge.httpserver import trim_heap
from vertex_edge.webapp.client import PredictionClient, build_client
from vertex_edge.webapp.failures import Failure, failure_for, sentence
from vertex_edge.webapp.feedback import build_feedback
from vertex_edge.webapp.limits import Admission, WorkPool
from vertex_edge.webapp.logs import BodyLimitMiddleware, BodyTooLarge, RequestLogMiddleware, request_id
from vertex_edge.webapp.predict import decode_pool
from vertex_edge.webapp.routes import get_client, router
from vertex_edge.webapp.samples import Sample, load_samples
from vertex_edge.webapp.settings import WebappSettings
from vertex_edge.webapp.views import error_response, templates

__all__ = ["create_app", "get_client"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
#: Multipart framing allowed on top of the file itself before the body is refused outright.
MULTIPART_SLACK = 64 * 1024
TRIM_AFTER_S = 1.0


class HeapTrimmer:
    """Memory freed after a burst of uploads goes back to the OS (:func:`httpserver.trim_heap`),
    once no upload has been in progress for :data:`TRIM_AFTER_S`, in the decode pool (a few ms)."""

    def __init__(self, pool: WorkPool) -> None:
        self.pool = pool
        self.timer: asyncio.TimerHandle | None = None

    def idle(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(TRIM_AFTER_S, self._trim)

    def _trim(self) -> None:
        self.timer = None
        self.pool.submit(trim_heap, cost=0)


def _lifespan(settings: WebappSettings):  # noqa: ANN202 - an async context manager factory
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = app.state
        owned = None
        if state.client is None:
            owned = state.client = build_client(settings)
        state.decoder = decode_pool(settings)
        state.decoder.start()
        state.admission.on_idle = HeapTrimmer(state.decoder).idle
        state.feedback = build_feedback(settings, state.labels)
        if state.feedback is not None:
            state.feedback.start()
        log.info(
            "web app started",
            extra={"fields": {"version": __version__, "backend": settings.backend,
                              "endpoint": settings.describe_endpoint(),
                              "feedback": settings.feedback_uri or "off"}},
        )  # fmt: skip
        try:
            yield
        finally:
            state.admission.on_idle = None
            state.decoder.close()
            if state.feedback is not None:
                state.feedback.close()
                state.feedback = None
            if owned is not None:
                await owned.aclose()
                state.client = None

    return lifespan


def create_app(settings: WebappSettings | None = None, *, client: PredictionClient | None = None) -> FastAPI:
    """Build the app. ``settings`` default to the environment (validated here, at start-up);
    ``client`` defaults to the one the settings choose, built when the app starts."""
    settings = settings if settings is not None else WebappSettings.from_env()
    app = FastAPI(
        title="vertex-edge web app",
        summary="Classify a clothing image with the deployed Fashion-MNIST model.",
        description=(
            "Upload an image to `POST /api/predict` as multipart/form-data field `file` "
            f"(PNG, JPEG, WebP, GIF, BMP or TIFF, up to {settings.max_upload_mb:g} MB and "
            f"{settings.max_image_pixels:,} decoded pixels). The app preprocesses it "
            "the way Fashion-MNIST images were made (28x28 grayscale, light background inverted) and asks "
            "the deployed endpoint. Each answer carries the prediction's `request_id`; send the correct label "
            "to `POST /api/feedback` (when the deployment collects feedback). At most "
            f"{settings.max_pending} uploads are in progress at once (beyond: 503 with Retry-After) and each "
            f"is answered within {settings.deadline_s:g} s (else 408/503/504). "
            "Errors are JSON `{error, message, request_id}`."
        ),
        version=__version__,
        debug=False,
        docs_url=None,  # Swagger UI/ReDoc load assets from a CDN; the schema is at /openapi.json
        redoc_url=None,
        lifespan=_lifespan(settings),
    )
    app.state.settings = settings
    app.state.client = client
    app.state.samples = load_samples()
    app.state.labels = sample_labels(app.state.samples)  # until the endpoint names its classes
    app.state.templates = templates()
    app.state.admission = Admission(settings.max_pending)
    app.state.decoder = None  # the decode pool, started in the lifespan
    app.state.feedback = None
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes + MULTIPART_SLACK)
    app.add_middleware(RequestLogMiddleware)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.include_router(router)
    _add_error_handlers(app, settings)
    return app


def sample_labels(samples: dict[str, Sample]) -> tuple[str, ...]:
    """The class names of the sample gallery, by class id (one sample per class)."""
    by_id = {s.class_id: s.label for s in samples.values()}
    return tuple(by_id[i] for i in range(len(by_id))) if set(by_id) == set(range(len(by_id))) else ()


def _add_error_handlers(app: FastAPI, settings: WebappSettings) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc, BodyTooLarge):
            return error_response(request, failure_for(exc, settings))
        codes = {404: ("not_found", "Page not found"), 405: ("method_not_allowed", "Method not allowed")}
        code, title = codes.get(exc.status_code, ("http_error", "Request failed"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        return error_response(request, Failure(exc.status_code, code, title, sentence(detail)))

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
