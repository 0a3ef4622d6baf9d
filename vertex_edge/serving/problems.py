"""Error answers: every client error is a JSON body
``{"error": {"code", "status", "message", "details": [{"instance", "message"}]}}``.

:class:`Problem` is raised anywhere on the request path and turned into that body (with its
headers, e.g. ``Retry-After``) by whoever answers the request: the :mod:`predict handler
<vertex_edge.serving.predict>` itself, or FastAPI's exception handler for the other routes.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response

from vertex_edge.serving import jsonio

JSON = "application/json"

#: the ``status`` word of each code (Google API style, as Vertex AI answers)
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    503: "UNAVAILABLE",
}

#: the body of every unexpected failure: nothing about the failure leaks to the client
INTERNAL_BODY = jsonio.dumps({"error": {"code": 500, "status": "INTERNAL", "message": "internal error", "details": []}})


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
    body = {
        "error": {
            "code": problem.code,
            "status": STATUS_NAMES.get(problem.code, "ERROR"),
            "message": problem.message,
            "details": problem.details,
        }
    }
    return jsonio.dumps(body)


def raw_headers(headers: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    """``headers`` as ASGI header pairs (lower-case names)."""
    if not headers:
        return []
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


def error_response(problem: Problem) -> Response:
    """``problem`` as a FastAPI response."""
    return Response(error_body(problem), status_code=problem.code, media_type=JSON, headers=problem.headers)
