"""The FastAPI app: Vertex AI's custom-container contract over ONNX Runtime.

``create_app(settings)`` builds the app; nothing happens at import. The model is loaded in the
app's lifespan, in the background: the health route answers 503 until the model is loaded
and a warm-up inference has run, then 200. Every client error is a 4xx JSON body
``{"error": {"code", "status", "message", "details": [{"instance", "message"}]}}``
(:mod:`~vertex_edge.serving.problems`).

The request path: :class:`EdgeApp` first runs every request through
:class:`~vertex_edge.serving.request_layer.RequestLayer`, a pure ASGI layer that logs it (one
JSON line) and answers ``POST <predict route>`` itself with
:class:`~vertex_edge.serving.predict.Predictor` (read the body, parse it
(:mod:`~vertex_edge.serving.body`), batch it, answer); every other request (health, OpenAPI,
docs, 404, 405) goes on to FastAPI. The predict route is also declared to FastAPI so the
OpenAPI document describes it, but FastAPI never runs it: its routing, dependency solving and
exception middleware cost more than the model call for one image. So anything that must see
every prediction request (limits, deadlines) belongs in ``RequestLayer`` or ``Predictor``, not
in FastAPI middleware.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from vertex_edge.monitoring.capture import Capture
from vertex_edge.serving import jsonio, schemas
from vertex_edge.serving.asgi import ASGIApp, Receive, Scope, Send
from vertex_edge.serving.batching import MicroBatcher
from vertex_edge.serving.model import (
    LoadedModel,
    StorageClientFactory,
    default_wide_threads,
    load_model,
    registry_version_of,
)
from vertex_edge.serving.predict import Predictor
from vertex_edge.serving.problems import INTERNAL_BODY, JSON, Problem, error_response
from vertex_edge.serving.reload import EndpointFollower, error_message
from vertex_edge.serving.request_layer import RequestLayer
from vertex_edge.serving.settings import ServerSettings
from vertex_edge.serving.state import ServingState

log = logging.getLogger("vertex_edge.serving")

#: the capture's counters (not part of Vertex AI's contract: reachable inside the container and locally)
CAPTURE_ROUTE = "/capture"


class EdgeApp(FastAPI):
    """FastAPI whose requests first pass through :attr:`entry` (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.entry: ASGIApp = self.fastapi

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.entry(scope, receive, send)

    async def fastapi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI's own request handling."""
        await FastAPI.__call__(self, scope, receive, send)


def create_app(
    settings: ServerSettings | None = None,
    *,
    storage_client_factory: StorageClientFactory | None = None,
    on_fatal: Callable[[str], None] | None = None,
) -> FastAPI:
    """Build the app. ``settings`` default to the ``AIP_*``/``EDGE_*`` environment (read now,
    not at import); ``on_fatal`` is called when the model cannot be loaded (the entry point
    then exits non-zero, so Vertex AI reports a failed deployment instead of waiting)."""
    settings = settings or ServerSettings.from_env(os.environ)
    state = ServingState()
    batcher: MicroBatcher[LoadedModel] = MicroBatcher(
        lambda: state.model,  # type: ignore[arg-type, return-value]
        lambda model, batch: model.predict(batch),
        max_batch=settings.max_batch,
        max_wait_s=settings.batch_wait_ms / 1000.0,
        # one request's images: many images share its parsing, so they may take every CPU
        run_one=lambda model, batch: model.predict(batch, wide=True),
    )
    warm_sizes = sorted({1, min(64, settings.max_batch), settings.max_batch})
    pools: dict[str, ThreadPoolExecutor] = {}  # made in the lifespan
    follower: EndpointFollower | None = None

    wide_threads, wide_min = settings.ort_wide_threads or default_wide_threads(), settings.ort_wide_min or settings.max_batch

    def load(uri: str, *, wide: bool = True) -> LoadedModel:
        """The model at ``uri``, warmed up; ``wide``: with its wide session (a reload), else that
        comes after the server is ready (:func:`widen`), so the cold start does not wait for it."""
        model = load_model(
            uri, threads=settings.ort_threads, cache_dir=settings.model_cache, storage_client_factory=storage_client_factory
        )
        model.warm_up(warm_sizes)
        return model.widened(wide_threads, wide_min, warm_sizes) if wide else model

    async def widen(model: LoadedModel) -> None:
        loop = asyncio.get_running_loop()
        try:
            wide = await loop.run_in_executor(None, model.widened, wide_threads, wide_min, warm_sizes)
        except Exception as exc:  # noqa: BLE001 - the model serves on, on its one session
            log.warning("no second ONNX Runtime session for big requests: %s", error_message(exc))
            return
        if state.model is model:  # not swapped by a reload meanwhile (that one has its own)
            state.model = wide

    def fail(logged: str, reason: str | None = None) -> None:
        state.status, state.error = "failed", reason or logged
        log.error("%s", logged)
        if follower is not None:
            follower.start_failed(reason or logged)
        if on_fatal is not None:
            on_fatal(reason or logged)

    async def start() -> None:
        if state.status == "failed":  # capture could not start: the server is stopping
            return
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        if follower is not None:
            follower.starting(registry_version_of(Path(settings.storage_uri)) if settings.follow else None)
        try:
            model = await loop.run_in_executor(None, functools.partial(load, settings.storage_uri, wide=False))
        except Exception as exc:  # noqa: BLE001 - any load failure is reported, then fatal
            fail(f"cannot load the model from {settings.storage_uri}: {error_message(exc)}", error_message(exc))
            return
        state.model, state.status = model, "ready"
        log.info(
            "model %s loaded from %s and warmed up in %.2f s",
            model.version,
            model.source,
            time.perf_counter() - started,
            extra={"fields": {"model_version": model.version, "registry_version": model.registry_version}},
        )
        await widen(model)
        if follower is not None:
            await follower.run(follow=settings.follow)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        try:
            state.capture = _start_capture(settings, storage_client_factory)
        except Exception as exc:  # noqa: BLE001 - a server told to capture that cannot must say so and stop
            fail(f"cannot capture predictions to {settings.capture.uri}: {error_message(exc)}")
        await batcher.start()
        # b64 images are decoded two at a time at most: decoding needs memory (a 16-megapixel
        # PNG is 64 MB while it is decoded), so concurrent uploads must not multiply it
        pools["images"] = ThreadPoolExecutor(max_workers=2, thread_name_prefix="edge-images")
        loader = asyncio.create_task(start(), name="edge-model-loader")
        try:
            yield
        finally:
            loader.cancel()
            await asyncio.gather(loader, return_exceptions=True)
            await batcher.stop()
            pools.pop("images").shutdown(wait=False, cancel_futures=True)
            if state.capture is not None:  # what is queued is written before the process ends
                await asyncio.get_running_loop().run_in_executor(None, state.capture.stop)
                state.capture = None

    if settings.endpoint_file:
        follower = EndpointFollower(
            Path(settings.endpoint_file), state, load, url=settings.url, interval_s=settings.reload_interval_s
        )

    app = EdgeApp(
        title="vertex-edge prediction server",
        description="Fashion-MNIST classifier on Vertex AI's custom-container contract.",
        version="1",
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.serving = state
    app.state.settings = settings
    app.state.batcher = batcher
    _add_routes(app, settings, state)
    predictor = Predictor(settings, state, batcher, pools)
    app.entry = RequestLayer(app.fastapi, predictor, settings)
    return app


def _start_capture(settings: ServerSettings, client_factory: StorageClientFactory | None) -> Capture | None:
    """The prediction capture (EDGE_CAPTURE_*), started; None when it is off."""
    if not settings.capture.enabled:
        return None
    capture = Capture.from_settings(settings.capture, client_factory=client_factory)
    capture.start()
    log.info(
        "capturing %g of the predictions to %s",
        settings.capture.sample_rate,
        settings.capture.uri,
        extra={"fields": {"capture_uri": settings.capture.uri, "sample_rate": settings.capture.sample_rate}},
    )
    return capture


def _add_routes(app: FastAPI, settings: ServerSettings, state: ServingState) -> None:
    """The routes FastAPI answers (health), the predict route's documentation, error handlers."""

    async def health() -> Response:
        model = state.model
        if state.status == "ready" and model is not None:
            # still 200 after a failed reload (the old model serves), with the error
            body = {
                "status": "ok",
                "model_version": model.version,
                "registry_version": model.registry_version,
                "target_version": state.target_version,
                "error": state.reload_error,
            }
            return Response(jsonio.dumps(body), media_type=JSON)
        body = {"status": state.status, "error": state.error}
        return Response(jsonio.dumps(body), status_code=503, media_type=JSON, headers={"Retry-After": "5"})

    async def capture() -> Response:
        current = state.capture
        body = current.stats() if current is not None else {"enabled": False}
        return Response(jsonio.dumps(body), media_type=JSON)

    async def predict() -> Response:  # pragma: no cover - Predictor answers this route
        # documents the route (its name makes the OpenAPI operationId, as before)
        raise RuntimeError("POST predict is answered by Predictor, before FastAPI")

    app.add_api_route(
        settings.health_route,
        health,
        methods=["GET"],
        summary="Health: 200 once the model is loaded and warmed up, 503 before",
        responses={200: {"model": schemas.HealthResponse}, 503: {"model": schemas.HealthResponse}},
        response_class=Response,
    )
    app.add_api_route(
        CAPTURE_ROUTE,
        capture,
        methods=["GET"],
        summary="Prediction capture counters (queued, captured, dropped, written, failed)",
        responses={200: {"model": schemas.CaptureStats}},
        response_class=Response,
    )
    app.add_api_route(
        settings.predict_route,
        predict,
        methods=["POST"],
        summary="Classify 28x28 images (nested or flat lists, or base64 PNG/JPEG)",
        responses={200: {"model": schemas.PredictResponse}, **schemas.error_responses()},
        response_class=Response,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": schemas.request_schema(settings.max_instances)}},
            }
        },
    )

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return error_response(exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return Response(INTERNAL_BODY, status_code=500, media_type=JSON)
