"""The page: the server-rendered HTML (a whole page, or the result fragment the page's script
asks for), and errors shown as the page or as the API's JSON, by what the request wants."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.templating import Jinja2Templates

from vertex_edge import __version__
from vertex_edge.monitoring.settings import privacy_line
from vertex_edge.webapp.failures import Failure
from vertex_edge.webapp.logs import request_id
from vertex_edge.webapp.models import ErrorResponse
from vertex_edge.webapp.predict import Outcome
from vertex_edge.webapp.samples import Sample
from vertex_edge.webapp.settings import WebappSettings

TEMPLATES_DIR = Path(__file__).parent / "templates"
FRAGMENT_HEADER = "x-fragment"


def templates() -> Jinja2Templates:
    return Jinja2Templates(directory=str(TEMPLATES_DIR))


def _pct(p: float) -> str:
    if p >= 0.9995:
        return "100%"
    if 0 < p < 0.001:
        return "<0.1%"
    return f"{p * 100:.1f}%"


def result_view(outcome: Outcome, root: str, sample: Sample | None, *, feedback: bool = False) -> dict[str, Any]:
    """What the result fragment shows. An out-of-distribution answer keeps the model's guess,
    de-emphasised under a "not sure this is a clothing item" message."""
    pred = outcome.prediction
    bars = [
        {"name": name, "pct": _pct(p), "width": round(p * 100, 2), "top": i == pred.class_id}
        for i, (name, p) in enumerate(zip(pred.labels, pred.probabilities, strict=True))
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
        "ood": bool(pred.ood and pred.ood.flag),
        "ood_score": f"{pred.ood.score:.3g}" if pred.ood else None,
        "request_id": pred.request_id,
        # the control needs the prediction's id and real class names to answer with
        "feedback": feedback and bool(pred.request_id) and pred.named,
        "labels": list(pred.labels),
    }


def wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith(("/api/", "/healthz", "/openapi")) or "application/json" in request.headers.get(
        "accept", ""
    ).split(";")[0]


def page(
    request: Request,
    *,
    outcome: Outcome | None = None,
    failure: Failure | None = None,
    sample: Sample | None = None,
    status: int = 200,
) -> Response:
    """The page (or, for the page's own script, just the result fragment)."""
    state = request.app.state
    settings: WebappSettings = state.settings
    root = request.scope.get("root_path", "")
    context = {
        "root": root,
        "samples": list(state.samples.values()),
        "max_upload_mb": f"{settings.max_upload_mb:g}",
        "max_upload_bytes": settings.max_upload_bytes,
        "backend_label": "a Vertex AI endpoint" if settings.backend == "vertex" else "the local prediction server",
        "result": result_view(outcome, root, sample, feedback=state.feedback is not None) if outcome else None,
        "failure": failure,
        "version": __version__,
        "privacy": privacy_line(model_input_logged=settings.model_input_logged),
    }
    fragment = request.headers.get(FRAGMENT_HEADER) == "1"
    response = state.templates.TemplateResponse(
        request, "_result.html" if fragment else "index.html", context, status_code=status
    )
    if outcome is not None or failure is not None:
        response.headers["cache-control"] = "no-store"
    return response


def error_response(request: Request, failure: Failure) -> Response:
    """The error as JSON for the API, as plain text for static files, else as the page."""
    rid = request_id(request.scope)
    request.state.log_fields = {"error": failure.code}
    headers = {"retry-after": str(failure.retry_after)} if failure.retry_after is not None else {}
    if wants_json(request):
        body = ErrorResponse(error=failure.code, message=failure.message, request_id=rid)
        return JSONResponse(
            body.model_dump(), status_code=failure.status, headers={"cache-control": "no-store", **headers}
        )
    if request.url.path.startswith("/static/"):
        return PlainTextResponse(failure.message, status_code=failure.status, headers=headers)
    response = page(request, failure=failure, status=failure.status)
    response.headers.update(headers)
    return response
