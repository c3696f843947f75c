"""Static files: the console's own, the vendored browser libraries, and Plotly's bundle.

``plotly.min.js`` is not copied into this repository: the ``plotly`` package (a declared
dependency) ships it as package data, and it is served from there, so its version is
whatever ``pip`` installed and recorded in the lock of that install.
"""

from __future__ import annotations

from pathlib import Path

import plotly
from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).parent / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

router = APIRouter(include_in_schema=False)


@router.get("/static/vendor/plotly/plotly.min.js")
async def plotly_bundle() -> FileResponse:
    return FileResponse(
        PLOTLY_JS,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )
