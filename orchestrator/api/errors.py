"""The one place where errors become HTTP responses: ``{"error": "..."}``.

Domain errors carry their status; FastAPI's own validation errors become a
400 (unparseable JSON) or 422 (wrong shape) with a readable message; a full
disk, wherever a write met it, is a 507 (``DiskFull``) and never a 500; a
method a path does not have is a 405 whose ``Allow`` header lists the ones it
has; a client that hangs up while it sends a body is noted in one line (what it sent
is dropped: an upload's half file is removed and its URL still works); anything
unexpected is logged and answered with a 500 that leaks no internals.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Scope

from orchestrator.disk import DiskMonitor, is_disk_full
from orchestrator.errors import OrchError

log = logging.getLogger("orch.api")


def error_response(status: int, message: str) -> JSONResponse:
    """``message`` may quote the request (an unknown name): a lone surrogate in it (a
    ``\\ud800`` escape) is no UTF-8, and the refusal itself would be a 500. Escaped."""
    if not message.isascii():
        message = message.encode("utf-8", "backslashreplace").decode()
    return JSONResponse({"error": message}, status_code=status)


async def _domain(_: Request, exc: OrchError) -> Response:
    return error_response(exc.status, exc.message)


async def _validation(_: Request, exc: RequestValidationError) -> Response:
    return error_response(*describe_validation(exc))


async def _http(request: Request, exc: StarletteHTTPException) -> Response:
    page = getattr(request.app.state, "http_error_page", None)  # the console's, for browsers
    shown: Response | None = page(request, exc) if page is not None else None
    if shown is not None:
        return shown
    message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = "no such route"
    if exc.status_code == 405:
        given = (exc.headers or {}).get("Allow", "")  # routes outside the document
        allowed = allowed_methods(request.app, request.scope) or [
            m.strip() for m in given.split(",") if m.strip()
        ]
        response = error_response(405, f"method not allowed here; use {', '.join(allowed)}")
        response.headers["Allow"] = ", ".join(allowed)
        return response
    return error_response(exc.status_code, message)


async def _os_error(request: Request, exc: OSError) -> Response:
    if not is_disk_full(exc):
        raise exc  # to the catch-all below: a 500, logged
    disk: DiskMonitor = request.app.state.services.store.disk
    disk.noticed_full()
    return error_response(507, disk.error().message)


async def _gone(request: Request, _: ClientDisconnect) -> Response:
    log.info("the client went away during %s %s", request.method, request.url.path)
    return error_response(400, "the client disconnected before its request body ended")


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, f"internal error: {type(exc).__name__}")


Handler = Callable[[Request, Any], Awaitable[Response]]

HANDLERS: dict[type[Exception], Handler] = {
    OrchError: _domain,
    RequestValidationError: _validation,
    StarletteHTTPException: _http,
    OSError: _os_error,
    ClientDisconnect: _gone,
    Exception: _unexpected,  # Starlette runs this one in its outermost layer, then re-raises
}
"""Exception class → its answer; a class not listed takes its nearest listed base's."""


def install(app: FastAPI) -> None:
    for kind, handler in HANDLERS.items():
        app.add_exception_handler(kind, handler)


async def answer(request: Request, exc: Exception) -> Response:
    """The answer FastAPI's stack gives ``exc``, for a request answered outside it (the hot
    routes): the app's handlers (these, and any other module adds), looked up as
    Starlette does (the nearest class in the MRO); a handler that gives up (``_os_error``
    on another ``OSError``) leaves it to the 500, as in the stack."""
    handlers = request.app.exception_handlers
    handler = next(handlers[kind] for kind in type(exc).__mro__ if kind in handlers)
    try:
        response = handler(request, exc)
        return await response if inspect.isawaitable(response) else response
    except Exception:
        return await _unexpected(request, exc)


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
