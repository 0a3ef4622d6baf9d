"""The UI's static files, read into memory when the app is made and answered from the event loop
(no file or thread work per request), with an ETag so a page load revalidates them cheaply.

``/static/...`` is this package's ``static/`` folder (scripts, styles, the vendored uPlot);
``/static-webapp/app.css`` and ``/favicon.svg`` are the web app's own, so both apps look alike.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from fastapi.responses import Response

STATIC_DIR = Path(__file__).parent / "static"
WEBAPP_STATIC = Path(__file__).parent.parent / "webapp" / "static"
TEXT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
              ".md": "text/plain; charset=utf-8", "": "text/plain; charset=utf-8"}  # fmt: skip


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def _asset(path: Path) -> Asset:
    body = path.read_bytes()
    media = TEXT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Asset(body, media, '"' + hashlib.sha256(body).hexdigest()[:20] + '"')


def load_assets() -> dict[str, Asset]:
    """URL path -> asset, for every file the pages use."""
    assets = {
        "/static/" + p.relative_to(STATIC_DIR).as_posix(): _asset(p)
        for p in sorted(STATIC_DIR.rglob("*"))
        if p.is_file()
    }
    assets["/static-webapp/app.css"] = _asset(WEBAPP_STATIC / "app.css")
    assets["/favicon.svg"] = _asset(WEBAPP_STATIC / "favicon.svg")
    return assets


def asset_response(asset: Asset, if_none_match: str | None) -> Response:
    headers = {"etag": asset.etag, "cache-control": "no-cache"}  # revalidate: a 304 costs nothing
    if if_none_match and asset.etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)
