"""Getting in: the one-time link ``orch console`` opens, the API-key form, logging out.

The link is consumed by a GET (it is what a terminal opens), which answers with a
tiny page that moves on by itself: a SameSite=Strict cookie set on a navigation that
came from another application is only sent on the *next* same-site navigation, so a
redirect straight to the console could arrive without it. A used or expired link opened
by a browser that is still signed in (a restored tab, Back) leads on to its page: only a
browser without a session is stopped at the sign-in page, with why.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from orchestrator.api.responses import errors
from orchestrator.console.guard import (
    check_host,
    check_origin,
    console_of,
    read_form,
    session,
)
from orchestrator.console.pages.base import see_other
from orchestrator.console.render import page
from orchestrator.console.sessions import COOKIE, IDLE_TTL, Session

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/v1/console", tags=["console"], responses=errors(401, 507))


def safe_next(value: str | None) -> str:
    """Only a path on this console: never ``//host`` or ``http://...`` (open redirect).

    A browser drops tabs and newlines from a URL before reading it and reads a backslash
    as a slash, so ``/<TAB>/evil.example/`` would lead to ``//evil.example/``: a value with
    any control or invisible character, or a backslash, leads to the apps instead."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/apps"
    if "\\" in value or not value.isprintable():
        return "/apps"
    return value


def _with_cookie(request: Request, response: Response, started: Session) -> Response:
    """Secure over TLS: the browser then never sends the session over plain http."""
    response.set_cookie(
        COOKIE,
        started.token,
        max_age=int(IDLE_TTL),
        httponly=True,
        samesite="strict",
        path="/",
        secure=request.url.scheme == "https",
    )
    return response


SESSION_ENDED = (
    "Your session ended (signed out, or the daemon restarted), so the form you sent was not "
    "saved. Sign in to go back to its page, and send it again."
)
"""The login page's word to a browser whose form came in without a session (``ended``)."""


@router.get("/login")
async def login_page(
    request: Request, token: str | None = None, next: str | None = None, ended: str = ""
) -> Response:
    check_host(request)
    target = safe_next(next)
    if token is None:
        return page(request, "login.html", next=target, error=SESSION_ENDED if ended else "")
    sessions = console_of(request).sessions
    started = sessions.redeem(token)
    if started is None and sessions.get(request.cookies.get(COOKIE)) is not None:
        # Already signed in (a restored tab, Back, the link opened twice): the used link
        # is no reason to stop at the sign-in page; on to the page it names.
        return see_other(target)
    if started is None:
        return page(
            request,
            "login.html",
            status=401,
            next=target,
            error="This login link was already used or has expired. Run `orch console` "
            "again, or sign in with the API key.",
        )
    return _with_cookie(request, page(request, "entering.html", next=target), started)


@router.post("/login")
async def login_with_key(request: Request) -> Response:
    check_host(request)
    check_origin(request)
    form = await read_form(request)
    target = safe_next(str(form.get("next") or ""))
    key = str(form.get("api_key") or "")
    started = console_of(request).sessions.login(key)
    if started is None:
        wrong = "That is not this daemon's API key" if key.strip() else "Enter the API key"
        return page(
            request,
            "login.html",
            status=401,
            address="/login?" + urlencode({"next": target}),
            next=target,
            error=f"{wrong} (it is in <home>/api-key).",
        )
    return _with_cookie(request, see_other(target), started)


@router.post("/logout")
async def logout(request: Request, current: Session = Depends(session)) -> Response:
    console_of(request).sessions.end(current.token)
    response = see_other("/login")
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/")
async def home(request: Request) -> Response:
    check_host(request)
    return see_other("/apps")


@api.post("/login-link", status_code=201)
async def login_link(request: Request) -> JSONResponse:
    """A single-use console login link (what ``orch console`` opens); expires in 2 minutes."""
    token, expires = console_of(request).sessions.mint_link()
    url = f"{str(request.base_url).rstrip('/')}/login?token={token}"
    stamp = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return JSONResponse({"url": url, "expires_at": stamp}, 201)
