"""Error answers: every client error is a JSON body
``{"error": {"code", "status", "message", "details": [{"instance", "message"}]}}``
(:func:`vertex_edge.httpserver.error_document`, which the connection limits answer with too).

:class:`Problem` is raised anywhere on the request path and turned into that body (with its
headers, e.g. ``Retry-After``) by whoever answers the request: the :mod:`predict handler
<vertex_edge.serving.predict>` itself, or FastAPI's exception handler for the other routes.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response

from vertex_edge.httpserver import error_document
from vertex_edge.serving import jsonio

JSON = "application/json"

#: the body of every unexpected failure: nothing about the failure leaks to the client
INTERNAL_BODY = jsonio.dumps(error_document(500, "internal error"))


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


def error_body(problem: Problem) -> bytes:
    """The JSON body of ``problem``."""
    return jsonio.dumps(error_document(problem.code, problem.message, problem.details))


def raw_headers(headers: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    """``headers`` as ASGI header pairs (lower-case names)."""
    if not headers:
        return []
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


def error_response(problem: Problem) -> Response:
    """``problem`` as a FastAPI response."""
    return Response(error_body(problem), status_code=problem.code, media_type=JSON, headers=problem.headers)
