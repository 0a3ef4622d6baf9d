"""The FastAPI app: Vertex AI's custom-container contract over ONNX Runtime.

``create_app(settings)`` builds the app; nothing happens at import. The model is loaded in the
app's lifespan, in the background: the health route answers 503 until the model is loaded
and a warm-up inference has run, then 200. Every client error is a 4xx JSON body
``{"error": {"code", "status", "message", "details": [{"instance", "message"}]}}``.

The request path: :class:`EdgeApp` first runs every request through :class:`RequestLayer`, a
pure ASGI layer that logs it (one JSON line) and answers ``POST <predict route>`` itself with
:class:`Predictor` (read the body, parse it, batch it, answer); every other request (health,
OpenAPI, docs, 404, 405) goes on to FastAPI. The predict route is also declared to FastAPI so
the OpenAPI document describes it, but FastAPI never runs it: its routing, dependency solving
and exception middleware cost more than the model call for one image. So anything that must
see every prediction request (limits, deadlines) belongs in :class:`RequestLayer` or
:class:`Predictor`, not in FastAPI middleware.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import Response

from vertex_edge.errors import EdgeError
from vertex_edge.preprocess import PreprocessError, instance_to_array
from vertex_edge.serving import jsonio, schemas
from vertex_edge.serving.batching import MicroBatcher
from vertex_edge.serving.logs import ACCESS_LOGGER
from vertex_edge.serving.model import LoadedModel, StorageClientFactory, load_model
from vertex_edge.serving.settings import ServerSettings

log = logging.getLogger("vertex_edge.serving")
access_log = logging.getLogger(ACCESS_LOGGER)

_STATUS = {400: "INVALID_ARGUMENT", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE", 503: "UNAVAILABLE"}
_MAX_REPORTED = 10  # invalid instances listed in one error
_JSON = "application/json"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Problem(Exception):
    """A client error: becomes a 4xx JSON response (or 503 while no model is loaded)."""

    def __init__(
        self,
        code: int,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers


class ServingState:
    """What the routes see: the current model (swapped whole on a reload) and the load status."""

    def __init__(self) -> None:
        self.model: LoadedModel | None = None
        self.status = "loading"
        self.error: str | None = None


def _error_body(problem: Problem) -> bytes:
    body = {
        "error": {
            "code": problem.code,
            "status": _STATUS.get(problem.code, "ERROR"),
            "message": problem.message,
            "details": problem.details,
        }
    }
    return jsonio.dumps(body)


def error_response(problem: Problem) -> Response:
    return Response(_error_body(problem), status_code=problem.code, media_type=_JSON, headers=problem.headers)


_INTERNAL = jsonio.dumps({"error": {"code": 500, "status": "INTERNAL", "message": "internal error", "details": []}})


class EdgeApp(FastAPI):
    """FastAPI whose requests first pass through :attr:`entry` (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.entry: Callable[[Scope, Receive, Send], Awaitable[None]] = self.fastapi

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
    )
    warm_sizes = sorted({1, min(64, settings.max_batch), settings.max_batch})
    pools: dict[str, ThreadPoolExecutor] = {}  # made in the lifespan

    def load(uri: str) -> LoadedModel:
        model = load_model(
            uri,
            threads=settings.ort_threads,
            cache_dir=settings.model_cache,
            storage_client_factory=storage_client_factory,
        )
        model.warm_up(warm_sizes)
        return model

    async def start() -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            model = await loop.run_in_executor(None, load, settings.storage_uri)
        except Exception as exc:  # noqa: BLE001 - any load failure is reported, then fatal
            message = exc.message if isinstance(exc, EdgeError) else f"{type(exc).__name__}: {exc}"
            state.status, state.error = "failed", message
            log.error("cannot load the model from %s: %s", settings.storage_uri, message)
            if on_fatal is not None:
                on_fatal(message)
            return
        state.model, state.status = model, "ready"
        log.info(
            "model %s loaded from %s and warmed up in %.2f s",
            model.version,
            model.source,
            time.perf_counter() - started,
            extra={"fields": {"model_version": model.version, "registry_version": model.registry_version}},
        )
        if settings.endpoint_file:
            from vertex_edge.serving.reload import follow_endpoint

            await follow_endpoint(Path(settings.endpoint_file), state, load, settings.reload_interval_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
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

    async def health() -> Response:
        model = state.model
        if state.status == "ready" and model is not None:
            body = {"status": "ok", "model_version": model.version, "registry_version": model.registry_version}
            return Response(jsonio.dumps(body), media_type=_JSON)
        body = {"status": state.status, "error": state.error}
        return Response(jsonio.dumps(body), status_code=503, media_type=_JSON, headers={"Retry-After": "5"})

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
        settings.predict_route,
        predict,
        methods=["POST"],
        summary="Classify 28x28 images (nested or flat lists, or base64 PNG/JPEG)",
        responses={200: {"model": schemas.PredictResponse}, **schemas.error_responses()},
        response_class=Response,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {_JSON: {"schema": schemas.request_schema(settings.max_instances)}},
            }
        },
    )

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return error_response(exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return Response(_INTERNAL, status_code=500, media_type=_JSON)

    predictor = Predictor(settings, state, batcher, pools)
    app.entry = RequestLayer(app.fastapi, predictor, settings)
    return app


class Predictor:
    """``POST <predict route>`` as a pure ASGI handler: the body is read (and refused past the
    size limit), parsed, checked, batched with other requests' images and answered."""

    def __init__(
        self,
        settings: ServerSettings,
        state: ServingState,
        batcher: MicroBatcher[LoadedModel],
        pools: dict[str, ThreadPoolExecutor],
    ) -> None:
        self.settings = settings
        self.state = state
        self.batcher = batcher
        self.pools = pools

    async def __call__(self, scope: Scope, receive: Receive, send: Send, fields: dict[str, Any]) -> None:
        headers: list[tuple[bytes, bytes]] = []
        try:
            with self.batcher.incoming() as ticket:
                batch, with_labels = await self._parse(scope, receive, fields)
                probs, model = await self.batcher.submit(batch, ticket)
            status, body = 200, jsonio.dumps(_predictions(probs, model, with_labels=with_labels))
        except Problem as problem:
            status, body = problem.code, _error_body(problem)
            if problem.headers:
                headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in problem.headers.items()]
        except Exception:  # noqa: BLE001 - any other failure is a logged 500, as FastAPI would answer
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            status, body = 500, _INTERNAL
        fields["status"] = status
        headers += [(b"content-length", b"%d" % len(body)), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _parse(self, scope: Scope, receive: Receive, fields: dict[str, Any]) -> tuple[np.ndarray, bool]:
        content_type = declared = None
        for name, value in scope["headers"]:  # the first of each, as Starlette's Headers.get
            if name == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
            elif name == b"content-length" and declared is None:
                declared = value.decode("latin-1")
        if content_type is not None and not _is_json(content_type):
            raise Problem(
                415,
                f"the body is sent as {content_type.split(';')[0].strip()!r}; expected application/json "
                "(add the header 'Content-Type: application/json')",
            )
        settings = self.settings
        body = await _read_body(receive, declared, settings.max_body_bytes)
        if self.state.model is None:
            raise Problem(
                503, "no model is loaded yet; retry when the health route answers 200", headers={"Retry-After": "5"}
            )
        try:
            payload = jsonio.loads(body)
        except ValueError as exc:
            raise Problem(400, f'the body is not valid JSON ({exc}); expected {{"instances": [...]}}') from None
        instances, with_labels = _instances(payload, settings.max_instances)
        fields["instances"] = len(instances)
        # JSON true/false are not pixel values; skip looking for them when the body has none
        check_booleans = b"true" in body or b"false" in body
        if any(isinstance(i, dict) for i in instances):
            # image decoding stays off the event loop, in the bounded pool
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.pools.get("images"), _to_batch, instances, check_booleans), with_labels
        return _to_batch(instances, check_booleans), with_labels


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")


async def _read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The body, refused with 413 past ``limit`` bytes: by Content-Length before reading, and
    by counting the streamed bytes (chunked uploads have no Content-Length)."""
    if declared is not None:
        if not declared.strip().isdigit():
            raise Problem(400, f"Content-Length {declared!r} is not a number of bytes")
        if int(declared) > limit:
            raise Problem(413, _too_large(int(declared), limit))
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            raise Problem(400, "the client closed the connection before sending the whole body")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise Problem(413, _too_large(size, limit, at_least=True))
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if not body.strip():
        raise Problem(400, 'the body is empty; expected JSON like {"instances": [...]}')
    return body


def _too_large(size: int, limit: int, *, at_least: bool = False) -> str:
    return (
        f"the body is {'over ' if at_least else ''}{size:,} bytes; the limit is {limit:,} bytes "
        "(1.5 MB, as on Vertex AI): send fewer instances per request"
    )


def _describe(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _instances(payload: object, max_instances: int) -> tuple[list[object], bool]:
    """The instances, and whether ``parameters.labels`` asks for every class's name."""
    expected = '{"instances": [...], "parameters": {...}} (parameters optional)'
    if not isinstance(payload, dict):
        raise Problem(400, f"the body is {_describe(payload)}; expected a JSON object {expected}")
    unknown = [k for k in payload if k not in ("instances", "parameters")]
    if unknown:
        names = ", ".join(repr(k) for k in unknown[:5])
        raise Problem(400, f"unknown key(s) {names}; expected {expected}")
    if "instances" not in payload:
        raise Problem(400, f"'instances' is missing; expected {expected}")
    instances = payload["instances"]
    if not isinstance(instances, list):
        raise Problem(400, f"'instances' is {_describe(instances)}; expected a list of instances")
    if not instances:
        raise Problem(400, f"'instances' is empty; expected 1 to {max_instances} instances")
    if len(instances) > max_instances:
        raise Problem(
            400, f"'instances' has {len(instances)} instances; at most {max_instances} are accepted per request"
        )
    parameters = payload.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise Problem(400, f"'parameters' is {_describe(parameters)}; expected an object")
    with_labels = (parameters or {}).get("labels", False)
    if not isinstance(with_labels, bool):
        raise Problem(400, f"'parameters.labels' is {_describe(with_labels)}; expected true or false")
    return instances, with_labels


def _to_batch(instances: list[object], check_booleans: bool = True) -> np.ndarray:
    """float32 [N, 28, 28] for the instances, or a 400 listing every invalid one by index."""
    if not check_booleans:
        fast = _fast_batch(instances)
        if fast is not None:
            return fast
    arrays: list[np.ndarray] = []
    details: list[dict[str, Any]] = []
    bad = 0
    for index, instance in enumerate(instances):
        try:
            arrays.append(instance_to_array(instance, check_booleans=check_booleans))
        except PreprocessError as exc:
            bad += 1
            if len(details) < _MAX_REPORTED:
                details.append({"instance": index, "message": str(exc)})
    if details:
        first = details[0]
        more = f" ({bad} of {len(instances)} instances are invalid; see details)" if bad > 1 else ""
        raise Problem(400, f"instance {first['instance']}: {first['message']}{more}", details)
    return np.stack(arrays) if len(arrays) > 1 else arrays[0][np.newaxis]


def _fast_batch(instances: list[object]) -> np.ndarray | None:
    """All-numeric instances of one shape in one numpy conversion (one image too); None when
    anything is unusual (the per-instance path then finds and names the problem)."""
    if not all(type(i) is list for i in instances):
        return None
    try:
        arr = np.array(instances)
    except (ValueError, TypeError, OverflowError):
        return None
    if arr.dtype.kind not in "iuf" or arr.shape[1:] not in ((28, 28), (784,)):
        return None
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        return None
    if arr.min() < 0 or arr.max() > 255:
        return None
    return arr.reshape(len(instances), 28, 28).astype(np.float32)


def _predictions(probs: np.ndarray, model: LoadedModel, *, with_labels: bool = False) -> dict[str, Any]:
    labels = model.labels
    ids = probs.argmax(axis=1).tolist()
    items = [{"label": labels[k], "class_id": k, "probabilities": row} for k, row in zip(ids, probs, strict=True)]
    if with_labels:  # every class's name, from the model card (the web app asks; Vertex AI passes it on)
        names = list(labels)
        for item in items:
            item["labels"] = names
    return {"predictions": items, "model_version": model.version}


class _StatusRecorder:
    """``send`` for FastAPI's responses, noting the status for the access log."""

    __slots__ = ("fields", "send")

    def __init__(self, send: Send, fields: dict[str, Any]) -> None:
        self.send = send
        self.fields = fields

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.fields["status"] = message["status"]
        await self.send(message)


class RequestLayer:
    """The outermost ASGI layer: one structured log line per HTTP request (method, route,
    status, latency, instances; never a payload or a query string), ``POST <predict route>``
    answered by the :class:`Predictor`, everything else passed on to FastAPI."""

    def __init__(
        self, app: Callable[[Scope, Receive, Send], Awaitable[None]], predictor: Predictor, settings: ServerSettings
    ) -> None:
        self.app = app
        self.predictor = predictor
        self.predict_route = settings.predict_route
        self.routes = {settings.predict_route: "predict", settings.health_route: "health"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        fields: dict[str, Any] = {"instances": None, "status": 500}
        try:
            if scope["path"] == self.predict_route and scope["method"] == "POST":
                await self.predictor(scope, receive, send, fields)
            else:
                await self.app(scope, receive, _StatusRecorder(send, fields))
        finally:
            if access_log.isEnabledFor(logging.INFO):
                path = scope.get("path", "")
                route = path if path in self.routes else "(other)"
                latency = (time.perf_counter() - started) * 1000.0
                status = fields["status"]
                access_log.info(
                    "%s %s %d %.2f ms",
                    scope.get("method"),
                    route,
                    status,
                    latency,
                    extra={
                        "fields": {
                            "method": scope.get("method"),
                            "route": route,
                            "status": status,
                            "latency_ms": round(latency, 3),
                            "instances": fields["instances"],
                        }
                    },
                )
