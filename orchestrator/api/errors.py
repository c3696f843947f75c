"""The one place where errors become HTTP responses: ``{"error": "..."}``.

Domain errors carry their status; FastAPI's own validation errors become a
400 (unparseable JSON) or 422 (wrong shape) with a readable message; a full
disk, wherever a write met it, is a 507 (``DiskFull``) and never a 500; a
method a path does not have is a 405 whose ``Allow`` header lists the ones it
has; anything unexpected is logged and answered with a 500 that leaks no
internals.
"""

from __future__ import annotations

import functools
import json
import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from orchestrator.disk import DiskMonitor, is_disk_full
from orchestrator.errors import OrchError

log = logging.getLogger("orch.api")


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(OrchError)
    async def _domain(_: Request, exc: OrchError) -> JSONResponse:
        return error_response(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(*describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = "no such route"
        if exc.status_code == 405:
            given = (exc.headers or {}).get("Allow", "")  # routes outside the document
            allowed = allowed_methods(app, request.scope) or [
                m.strip() for m in given.split(",") if m.strip()
            ]
            response = error_response(405, f"method not allowed here; use {', '.join(allowed)}")
            response.headers["Allow"] = ", ".join(allowed)
            return response
        return error_response(exc.status_code, message)

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError) -> JSONResponse:
        if not is_disk_full(exc):
            raise exc  # to the catch-all below: a 500, logged
        disk: DiskMonitor = request.app.state.services.store.disk
        disk.noticed_full()
        return error_response(507, disk.error().message)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}")


def describe_validation(exc: RequestValidationError) -> tuple[int, str]:
    problems = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx", {}).get("error", "")
            return 400, f"malformed JSON body: {ctx}".rstrip(": ")
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        problems.append(f"{where}: {err.get('msg', 'invalid')}")
    return 422, "invalid request: " + "; ".join(problems)


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """The methods the OpenAPI document lists for this path (Starlette names only the
    first matching route's, and orch declares one route per method). The most literal
    template wins: ``.../runs/uploadurl`` is that resource, not a run called so."""
    path = scope["path"]
    matching = [
        (template.count("{"), item)
        for template, item in app.openapi()["paths"].items()
        if _template_regex(template).fullmatch(path)
    ]
    if not matching:
        return []
    fewest = min(params for params, _ in matching)
    return sorted({m.upper() for params, item in matching if params == fewest for m in item})


@functools.lru_cache(maxsize=256)
def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)))
