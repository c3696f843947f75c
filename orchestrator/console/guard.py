"""The console's door: the Host it answers to, the session cookie, CSRF on every change.

- Host: only ``127.0.0.1:PORT`` or ``localhost:PORT``. A page served under another
  name (DNS rebinding) gets nothing, not even the login form.
- Session: without one, a page answers with a redirect to the login page (and the
  path to come back to); so does a browser's form post (its session ended while the form
  was open: the login page says so, and leads back to the form's page); a partial, a
  stream or a script answers 401. Nothing else is rendered.
- CSRF: an unsafe method must carry the session's token (form field ``csrf`` or
  header ``X-CSRF-Token``) and, when the browser sends an ``Origin``, come from the
  console's own origin. SameSite=Strict already keeps the cookie off cross-site
  requests; the token makes that not the only wall.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from starlette.datastructures import FormData

from orchestrator.console.sessions import COOKIE, Session, csrf_ok
from orchestrator.console.state import Console

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_FORM_PART = 64 * 1024 * 1024
"""A pasted input travels as one form field: allow what the JSON API allows."""


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
"""What a browser's form posts (a script posting JSON, or htmx, is not led to a page)."""


class LoginRequired(Exception):
    """No session: pages redirect to the login page, partials and streams answer 401.
    ``ended``: a form was posted, so the session it was filled in ended meanwhile."""

    def __init__(self, back_to: str, page: bool, ended: bool = False) -> None:
        super().__init__(back_to)
        self.back_to, self.page, self.ended = back_to, page, ended


class Refused(Exception):
    """A request the console will not serve (wrong host, missing CSRF token)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def check_host(request: Request) -> None:
    server = request.scope.get("server") or ("127.0.0.1", 0)
    host = request.headers.get("host", "")
    allowed = {f"127.0.0.1:{server[1]}", f"localhost:{server[1]}"}
    if host not in allowed:
        where = f"{request.url.scheme}://127.0.0.1:{server[1]}"
        raise Refused(421, f"this console answers on {where} only")


async def read_form(request: Request) -> FormData:
    """The request's form, parsed once (Starlette keeps it) with the console's part cap."""
    return await request.form(max_part_size=MAX_FORM_PART)


async def session(request: Request) -> Session:
    """Dependency of every console route but the login page and static files."""
    check_host(request)
    found = console_of(request).sessions.get(request.cookies.get(COOKIE))
    if found is None:
        browser = "text/html" in request.headers.get("accept", "")
        browser = browser and "hx-request" not in request.headers
        if request.method == "GET":
            back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(back, page=browser)
        form = request.headers.get("content-type", "").startswith(FORM_TYPES)
        raise LoginRequired(form_page(request), page=browser and form, ended=True)
    if request.method not in SAFE_METHODS:
        await check_csrf(request, found)
    request.state.session = found
    return found


def form_page(request: Request) -> str:
    """The page a posted form was on (its ``Referer``, sent within the console), where the
    login leads back to; the apps when the browser did not say."""
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc != request.headers.get("host") or not referer.path.startswith("/"):
        return "/apps"
    return referer.path + (f"?{referer.query}" if referer.query else "")


def check_origin(request: Request) -> None:
    """A browser's ``Origin``, when it sends one, must be the console's own (a sign-in with
    the key too: another site must not sign a browser in to a session it chose)."""
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin is not None and origin != own:
        raise Refused(403, "cross-site request refused")


async def check_csrf(request: Request, found: Session) -> None:
    check_origin(request)
    token: Any = request.headers.get("x-csrf-token")
    if token is None:
        token = (await read_form(request)).get("csrf")
    if not isinstance(token, str) or not csrf_ok(found, token):
        raise Refused(403, "missing or stale form token: reload the page and try again")
