"""``/docs``: the API reference (Swagger UI) from files the daemon serves, no CDN.

The OpenAPI document declares the bearer key as a security scheme, so the page's
Authorize button takes the key and "Try it out" sends it. The page itself is open,
like ``/openapi.json``: it shows the API's shape, no data.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse

from orchestrator.console.guard import check_host
from orchestrator.console.render import HEADERS, render

router = APIRouter(include_in_schema=False)

BEARER = "bearerKey"


@router.get("/docs")
async def api_reference(request: Request) -> HTMLResponse:
    check_host(request)
    return HTMLResponse(render("docs.html"), headers=HEADERS)


def declare_bearer_key(app: FastAPI) -> None:
    """Add the key to the OpenAPI document, unless something already declared one."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        if schemes:
            return schema
        schemes[BEARER] = {
            "type": "http",
            "scheme": "bearer",
            "description": "The daemon's API key: the file api-key in its home "
            "(orch daemon status shows where).",
        }
        for path, operations in schema.get("paths", {}).items():
            if path.startswith("/v1/"):
                for operation in operations.values():
                    operation.setdefault("security", [{BEARER: []}])
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
