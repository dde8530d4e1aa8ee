"""Serve the web UI's files at ``/`` (and ``/ui/…``), with the headers that keep it safe.

The UI is a single page with hash routing (``/#/runs?status=APP_ERROR``): the server only
ever hands out ``index.html`` and the assets beside it. Files are read once from the package
and kept in memory with a gzipped copy and an ETag; only names found in the package are
served, so no path from a request reaches the file system. Any other path under ``/ui/``
answers ``index.html``, so a link into the UI never lands on an error page.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from fastapi import APIRouter, Request, Response

router = APIRouter(include_in_schema=False)

# Everything the page may load comes from this origin; no inline script or style at all.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes
    media_type: str
    etag: str


@cache
def assets() -> dict[str, Asset]:
    """Every file of ``static/`` by its path there (``pages/run.js``)."""
    found: dict[str, Asset] = {}
    root = resources.files("herder.ui") / "static"

    def walk(folder: resources.abc.Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
                continue
            suffix = "." + entry.name.rpartition(".")[2]
            if suffix not in _TYPES:
                continue
            body = entry.read_bytes()
            found[prefix + entry.name] = Asset(
                body=body, gzipped=gzip.compress(body, 9, mtime=0), media_type=_TYPES[suffix],
                etag='"' + hashlib.sha256(body).hexdigest()[:16] + '"',
            )

    walk(root, "")
    return found


def _answer(request: Request, asset: Asset) -> Response:
    headers = dict(HEADERS, ETag=asset.etag, Vary="Accept-Encoding")
    # Revalidate every time: a new release must never run with an old module beside it.
    headers["Cache-Control"] = "no-cache"
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    body = asset.body
    if "gzip" in request.headers.get("accept-encoding", "") and len(asset.body) > 512:
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=asset.media_type, headers=headers)


@router.get("/")
async def index(request: Request) -> Response:
    return _answer(request, assets()["index.html"])


@router.get("/ui/{path:path}")
async def asset(path: str, request: Request) -> Response:
    found = assets().get(path) or assets()["index.html"]
    return _answer(request, found)
