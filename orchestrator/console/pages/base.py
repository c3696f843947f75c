"""What every page module shares: its router, HTML error pages, and small helpers.

A domain error raised in a page handler becomes an HTML page with the same status
and message the API would give (the message comes from the same ``OrchError``), so a
bookmarked link to a deleted run says "run ... not found" instead of showing JSON. So
does an address with no page at all, when a browser asks for it (``http_error_page``),
and a bug in a page handler (the 500 page; the API's paths keep their JSON).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from orchestrator.console.guard import (
    LoginRequired,
    Refused,
    check_host,
    console_of,
    session,
)
from orchestrator.console.render import page
from orchestrator.console.sessions import COOKIE
from orchestrator.console.state import Console
from orchestrator.disk import is_disk_full
from orchestrator.errors import OrchError
from orchestrator.services import Services

log = logging.getLogger("orch.console")

PASSED_ON = (LoginRequired, Refused, HTTPException, RequestValidationError, ClientDisconnect)
"""Errors the app's own handlers answer: the login redirect, a refusal, a missing route, a
malformed request, a client gone (their handlers tell a browser from a script); and a full
disk (a 507, not a bug)."""


class ConsoleRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except OrchError as exc:
                return error_page(request, exc.status, exc.message)
            except Exception as exc:
                if isinstance(exc, PASSED_ON) or is_disk_full(exc):
                    raise
                if "text/html" not in request.headers.get("accept", ""):
                    raise  # the API's answer: JSON, logged
                log.exception("unhandled error on %s %s", request.method, request.url.path)
                return error_page(request, 500, f"internal error: {type(exc).__name__}")

        return route


API_PATHS = ("/v1", "/healthz", "/openapi.json")
API_PREFIXES = ("/v1/", "/uploads/", "/downloads/")
"""Addresses whose every answer is the API's JSON, whoever asks."""


def error_page(request: Request, status: int, message: str) -> Response:
    address = _form_page(request)
    return page(request, "error.html", status=status, address=address, code=status, message=message)


def _form_page(request: Request) -> str:
    """For a form refused with the error page: the page the form was on (its ``Referer``,
    if on this console), for the address bar to go back to; the POST's address is none."""
    if request.method != "POST":
        return ""
    came_from = urlsplit(request.headers.get("referer", ""))
    same_origin = came_from.netloc == request.url.netloc
    if not same_origin or not came_from.path.startswith("/") or came_from.path.startswith("//"):
        return ""  # ("//host/..." would name another origin to the browser)
    return came_from.path + (f"?{came_from.query}" if came_from.query else "")


def http_error_page(request: Request, exc: HTTPException) -> Response | None:
    """A browser that opens an address with no page (``/nonexistent``) or a form's address
    (``GET /logout``) gets the console's error page with the same status, not JSON.
    ``None`` leaves the answer to the API: its own paths, a client that does not ask for
    HTML, a host the console does not answer on (the API's handler calls this first)."""
    path = request.url.path
    if path in API_PATHS or path.startswith(API_PREFIXES):
        return None
    if "text/html" not in request.headers.get("accept", ""):
        return None
    try:
        check_host(request)
    except Refused:
        return None
    request.state.session = console_of(request).sessions.get(request.cookies.get(COOKIE))
    allow = (exc.headers or {}).get("Allow", "")
    response = error_page(request, exc.status_code, _miss(path, exc, allow))
    if allow:
        response.headers["Allow"] = allow
    return response


def _miss(path: str, exc: HTTPException, allow: str) -> str:
    if exc.status_code == 404:
        return f"there is no page at {path}"
    if exc.status_code == 405:
        return f"{path} takes what a form sends ({allow}): it is not a page to open"
    return exc.detail if isinstance(exc.detail, str) else "this request cannot be served"


def pages_router() -> APIRouter:
    """A router whose every route needs a session (and CSRF on changes)."""
    return APIRouter(
        route_class=ConsoleRoute, include_in_schema=False, dependencies=[Depends(session)]
    )


def services_of(request: Request) -> Services:
    return console_of(request).services


def state(request: Request) -> Console:
    return console_of(request)


def see_other(url: str) -> RedirectResponse:
    """After a POST: the browser GETs the result (so a reload does not resubmit)."""
    return RedirectResponse(url, status_code=303)


def app_url(app_id: str, *parts: str) -> str:
    return "/" + "/".join(["apps", quote(app_id, safe=""), *(quote(p, safe="") for p in parts)])


def field(form: Any, name: str) -> str:
    """A text field of a form, stripped; missing and file fields read as ``""``."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def fields(form: Any, names: Iterable[str]) -> dict[str, str]:
    """The named text fields of a form, as ``field`` reads them. A page that refuses a form
    renders it again from these (its template's ``form`` values), so nothing typed is lost."""
    return {name: field(form, name) for name in names}
