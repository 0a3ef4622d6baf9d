"""The outermost ASGI layer: every HTTP request's access log line, and the predict route
answered before FastAPI."""

from __future__ import annotations

import logging
import time
from typing import Any

from vertex_edge.serving.asgi import ASGIApp, Receive, Scope, Send
from vertex_edge.serving.logs import ACCESS_LOGGER
from vertex_edge.serving.predict import Predictor
from vertex_edge.serving.settings import ServerSettings

access_log = logging.getLogger(ACCESS_LOGGER)


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
    """One structured log line per HTTP request (method, route, status, latency, instances, the
    prediction's request id; never a payload or a query string), ``POST <predict route>`` answered by the
    :class:`Predictor`, everything else passed on to FastAPI."""

    def __init__(self, app: ASGIApp, predictor: Predictor, settings: ServerSettings) -> None:
        self.app = app
        self.predictor = predictor
        self.predict_route = settings.predict_route
        self.routes = {settings.predict_route: "predict", settings.health_route: "health"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        fields: dict[str, Any] = {"instances": None, "status": 500, "request_id": None}
        try:
            if scope["path"] == self.predict_route and scope["method"] == "POST":
                await self.predictor(scope, receive, send, fields)
            else:
                await self.app(scope, receive, _StatusRecorder(send, fields))
        finally:
            if access_log.isEnabledFor(logging.INFO):
                self._log(scope, fields, started)

    def _log(self, scope: Scope, fields: dict[str, Any], started: float) -> None:
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
                    "request_id": fields["request_id"],
                }
            },
        )
