"""Rendering: the Jinja templates and their filters, JSON answers, and errors shown as a page or
as the API's JSON ``{error, message, request_id}``, by what the request wants."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.templating import Jinja2Templates

from vertex_edge import __version__
from vertex_edge.dashboard.table import dumps
from vertex_edge.dashboard.text import duration, number, param, percent, when
from vertex_edge.webapp.logs import request_id

TEMPLATES_DIR = Path(__file__).parent / "templates"
NO_STORE = {"cache-control": "no-store"}


@dataclass(frozen=True)
class ErrorPage:
    """What an error page (or JSON error) of the UI says."""

    status: int
    code: str
    title: str
    message: str


def templates() -> Jinja2Templates:
    t = Jinja2Templates(directory=str(TEMPLATES_DIR))
    t.env.filters.update(number=number, percent=percent, when=when, duration=duration, param=param)
    t.env.globals["version"] = __version__
    return t


def json_response(data: Any, status: int = 200) -> Response:
    """Compact JSON (``data``, or text already JSON), never cached. NaN and infinity become null."""
    body = data if isinstance(data, str) else dumps(data)
    return Response(body, status_code=status, media_type="application/json", headers=NO_STORE)


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "").split(",")[0]
    return request.url.path.startswith(("/api/", "/healthz", "/openapi")) or "application/json" in accept


def page(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    store = request.app.state.service.info
    full = {"root": request.scope.get("root_path", ""), "store": store.description, "target": store.target,
            "refresh_ms": request.app.state.refresh_ms, **context}  # fmt: skip
    return request.app.state.templates.TemplateResponse(request, template, full, status_code=status, headers=NO_STORE)


def error_response(request: Request, problem: ErrorPage) -> Response:
    request.state.log_fields = {"error": problem.code}
    if wants_json(request):
        body = {"error": problem.code, "message": problem.message, "request_id": request_id(request.scope)}
        return JSONResponse(body, status_code=problem.status, headers=NO_STORE)
    if request.url.path.startswith("/static"):
        return PlainTextResponse(problem.message, status_code=problem.status)
    return page(request, "error.html", {"problem": problem}, status=problem.status)
