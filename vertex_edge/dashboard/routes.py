"""The UI's routes, all read-only: three pages and the JSON API they (and scripts) use.

| page / API | what |
|---|---|
| ``/`` and ``GET /api/runs`` | every run, its flattened params, which params differ |
| ``/runs/{id}`` and ``GET /api/runs/{id}`` | one run: curves, confusion matrix, model, reproduce commands, output |
| ``/compare?ids=1,2`` and ``GET /api/compare?ids=1,2`` | 2+ runs: param differences, overlaid curves, metric deltas |
| ``GET /api/runs/{id}/artifacts/{name}`` | one of the run's artifacts (images inline, the rest as downloads) |

Handlers are plain ``def``: reading the store blocks, so FastAPI runs them in its thread pool.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from vertex_edge import __version__
from vertex_edge.dashboard.service import MAX_COMPARED, RunsService
from vertex_edge.dashboard.views import NO_STORE, json_response, page

router = APIRouter()

RunId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
IdsQuery = Annotated[list[str] | None, Query(description="run ids: ids=1,2 or ids=1&ids=2")]
INLINE = ("image/png", "image/jpeg", "image/svg+xml")


def service_of(request: Request) -> RunsService:
    return request.app.state.service


def parse_ids(raw: list[str] | None) -> list[str]:
    """``ids=1,2,3`` or ``ids=1&ids=2``: 2 to MAX_COMPARED distinct run ids, in order."""
    ids = list(dict.fromkeys(p for item in raw or [] for p in re.split(r"[,\s]+", item) if p))
    bad = [i for i in ids if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", i)]
    if bad:
        raise HTTPException(400, f"{bad[0]!r} is not a run id")
    if len(ids) < 2:
        raise HTTPException(400, "pick at least two runs to compare (ids=1,2)")
    if len(ids) > MAX_COMPARED:
        raise HTTPException(400, f"compare at most {MAX_COMPARED} runs at a time")
    return ids


def _no_run(run_id: str) -> HTTPException:
    return HTTPException(404, f"there is no run {run_id} in this store")


@router.get("/", include_in_schema=False)
def runs_page(request: Request) -> Response:
    """The table's data comes inside the page (one round trip); the page then polls ``/api/runs``."""
    initial = service_of(request).table_json().replace("</", "<\\/")  # no "</script>" inside the script
    return page(request, "runs.html", {"title": "Experiments", "initial": initial, "script": "runs.js"})


@router.get("/runs/{run_id}", include_in_schema=False)
def run_page(request: Request, run_id: RunId) -> Response:
    run = service_of(request).detail(run_id)
    if run is None:
        raise _no_run(run_id)
    return page(request, "run.html", {"title": f"Run {run_id}", "run": run, "script": "run.js", "charts": True})


@router.get("/compare", include_in_schema=False)
def compare_page(request: Request, ids: IdsQuery = None) -> Response:
    comparison, missing = service_of(request).compare(parse_ids(ids))
    if comparison is None:
        raise _no_run(", ".join(missing))
    return page(
        request,
        "compare.html",
        {
            "title": "Compare runs " + ", ".join(comparison["ids"]),
            "cmp": comparison,
            "script": "compare.js",
            "charts": True,
        },
    )


@router.get("/api/runs", summary="Every run, flattened params, which params differ", tags=["runs"])
def api_runs(request: Request) -> Response:
    return json_response(service_of(request).table_json())


@router.get("/api/runs/{run_id}", summary="One run in full", tags=["runs"])
def api_run(request: Request, run_id: RunId) -> Response:
    run = service_of(request).detail(run_id)
    if run is None:
        raise _no_run(run_id)
    return json_response(run)


@router.get("/api/runs/{run_id}/artifacts/{name}", summary="One artifact of a run", tags=["runs"])
def api_artifact(request: Request, run_id: RunId, name: Annotated[str, Path(max_length=255)]) -> Response:
    found = service_of(request).artifact(run_id, name)
    if found is None:
        raise HTTPException(404, f"run {run_id} has no artifact {name!r}")
    data, media = found
    disposition = "inline" if media in INLINE else "attachment"
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    headers = {**NO_STORE, "content-disposition": f'{disposition}; filename="{safe}"'}
    return Response(data, media_type=media, headers=headers)


@router.get("/api/compare", summary="Compare runs: param differences, metric deltas, curves", tags=["runs"])
def api_compare(request: Request, ids: IdsQuery = None) -> Response:
    comparison, missing = service_of(request).compare(parse_ids(ids))
    if comparison is None:
        raise _no_run(", ".join(missing))
    return json_response(comparison)


@router.get("/healthz", summary="Liveness", tags=["health"])
def healthz(request: Request) -> Response:
    return json_response({"status": "ok", "version": __version__, "store": service_of(request).info.description})
