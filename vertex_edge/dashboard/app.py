"""The experiments UI: server-rendered pages (runs table, one run, a comparison), a read-only JSON
API under ``/api/``, and the static assets - all served by this app, nothing from a CDN.

``create_app(service)`` assembles it; nothing happens at import. Only GET (and HEAD) routes exist.
A run that is corrupt, half-written or still running is shown as such: reading one never raises
(:mod:`vertex_edge.tracking.runs`). A store that cannot be reached (MongoDB down, the port-forward
gone) gives 503 with the reason; no stack trace reaches the browser.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from vertex_edge import __version__
from vertex_edge.dashboard.assets import asset_response, load_assets
from vertex_edge.dashboard.routes import router
from vertex_edge.dashboard.service import RunsService
from vertex_edge.dashboard.views import ErrorPage, error_response, templates
from vertex_edge.webapp.logs import RequestLogMiddleware, request_id

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]


def create_app(service: RunsService, *, allowed_hosts: list[str] | None = None, refresh_ms: int = 4000) -> FastAPI:
    """The app over ``service``'s store. ``allowed_hosts`` (Host headers answered) defaults to
    loopback names: a page on another site cannot read runs through DNS rebinding. Pages poll
    every ``refresh_ms`` while a run trains (the runs table every 6x that when none does)."""
    app = FastAPI(
        title="vertex-edge experiments",
        summary="Read-only view of the Sacred runs: table, run pages, comparisons.",
        version=__version__,
        debug=False,
        docs_url=None,  # Swagger UI/ReDoc load assets from a CDN; the schema is at /openapi.json
        redoc_url=None,
    )
    app.state.service = service
    app.state.templates = templates()
    app.state.refresh_ms = refresh_ms
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or LOOPBACK_HOSTS)
    app.add_middleware(RequestLogMiddleware)
    assets = load_assets()

    @app.get("/static/{name:path}", include_in_schema=False)
    @app.get("/static-webapp/{name:path}", include_in_schema=False)
    @app.get("/favicon.svg", include_in_schema=False)
    async def static(request: Request) -> Response:  # async: answered from memory, in the event loop
        asset = assets.get(request.url.path)
        if asset is None:
            raise StarletteHTTPException(404, "no such file")
        return asset_response(asset, request.headers.get("if-none-match"))

    app.include_router(router)
    _add_error_handlers(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: ("not_found", "Not found"), 405: ("method_not_allowed", "Read-only: only GET is answered")}
        code, title = titles.get(exc.status_code, ("http_error", "Request failed"))
        detail = (
            exc.detail
            if isinstance(exc.detail, str) and exc.detail not in ("Not Found", "Method Not Allowed")
            else title
        )
        return error_response(request, ErrorPage(exc.status_code, code, title, detail))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        where = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors()[:3])
        return error_response(
            request, ErrorPage(400, "invalid_request", "Invalid request", f"check {where or 'the URL'}")
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        if _store_unreachable(exc):
            return error_response(
                request,
                ErrorPage(503, "store_unavailable", "The run store cannot be reached",
                        f"{type(exc).__name__}: the store stopped answering - is MongoDB or its port-forward still up?"),
            )  # fmt: skip
        rid = request_id(request.scope)
        log.error("unhandled error", exc_info=exc, extra={"fields": {"request_id": rid}})
        return error_response(
            request, ErrorPage(500, "internal", "Something went wrong", f"see the log (request {rid})")
        )


def _store_unreachable(exc: Exception) -> bool:
    """A MongoDB driver error (checked by module, so pymongo is not imported here) or an OS error."""
    return type(exc).__module__.startswith(("pymongo", "gridfs")) or isinstance(exc, OSError)
