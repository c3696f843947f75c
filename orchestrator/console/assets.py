"""Static files: the console's own, the vendored browser libraries, and Plotly's bundle.

``plotly.min.js`` is not copied into this repository: the ``plotly`` package (a declared
dependency) ships it as package data, and it is served from there, so its version is
whatever ``pip`` installed and recorded in the lock of that install.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import plotly
from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from orchestrator import __version__

STATIC = Path(__file__).parent / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

router = APIRouter(include_in_schema=False)

CACHE_FOREVER = "public, max-age=31536000, immutable"


def fingerprint() -> str:
    """Changes whenever a static file or orch's version does: pages name their assets with
    ``?v=<this>``, so browsers may keep them for good and still never run a stale one."""
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(STATIC)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    digest.update(f"{PLOTLY_JS.stat().st_size}:{PLOTLY_JS.stat().st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


ASSET_VERSION = fingerprint()


class CachedStatic(StaticFiles):
    """Static files a browser may keep when asked for by their fingerprinted URL."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200 and b"v=" in scope.get("query_string", b""):
            response.headers["Cache-Control"] = CACHE_FOREVER
        return response


@router.get("/static/vendor/plotly/plotly.min.js")
async def plotly_bundle() -> FileResponse:
    return FileResponse(
        PLOTLY_JS,
        media_type="text/javascript",
        headers={"Cache-Control": CACHE_FOREVER},
    )
