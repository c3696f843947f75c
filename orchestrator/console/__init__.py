"""The web console: server-rendered pages served by the daemon itself, fully offline.

``install`` adds it to the API's FastAPI app: the pages (each behind a session),
the login routes, the static files (the console's own, the vendored libraries and
the ``plotly.min.js`` the ``plotly`` package ships), and ``POST /v1/console/login-link``
(behind the bearer key, like all of ``/v1``). Pages read through the same domain
services as the API (``Services``); nothing here touches SQL. A browser that opens an
address with no page gets the console's error page (``app.state.http_error_page``, which
the API's handler of HTTP errors asks first); the API's own paths keep their JSON.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from orchestrator.api.routing import add_routes
from orchestrator.console import assets
from orchestrator.console.guard import LoginRequired, Refused
from orchestrator.console.live import RunFeed
from orchestrator.console.pages import (
    app_forms,
    apps,
    docs,
    experiments,
    login,
    online_tests,
    run,
    run_actions,
    runs,
)
from orchestrator.console.pages.base import error_page, http_error_page, see_other
from orchestrator.console.sessions import Sessions
from orchestrator.console.state import Console
from orchestrator.runs.search import RunSearch
from orchestrator.services import Services

__all__ = ["install", "stop_streams"]


def install(app: FastAPI, svc: Services, api_key: str) -> Console:
    console = Console(
        services=svc, sessions=Sessions(api_key), search=RunSearch(svc.store), feed=RunFeed()
    )
    svc.runs.events.subscribe(lambda run_id, _status: console.feed.publish(run_id))
    app.state.console = console
    for router in (login.api, login.router, docs.router, assets.router):
        add_routes(app, router)
    docs.declare_bearer_key(app)
    for module in (apps, app_forms, runs, run_actions, run, experiments, online_tests):
        add_routes(app, module.router)
    app.mount("/static", assets.CachedStatic(directory=assets.STATIC), name="console-static")
    app.add_exception_handler(LoginRequired, _login_required)  # type: ignore[arg-type]
    app.add_exception_handler(Refused, _refused)  # type: ignore[arg-type]
    app.state.http_error_page = http_error_page  # no such page: HTML for a browser
    return console


def stop_streams(app: FastAPI) -> None:
    """The daemon is stopping: end every live stream so the server need not wait for them."""
    console: Console | None = getattr(app.state, "console", None)
    if console is not None:
        console.stopping.set()


async def _login_required(request: Request, exc: LoginRequired) -> Response:
    """A browser goes to the login page (told when its session ended under a form); a
    script, a partial or a stream gets JSON."""
    if exc.page:
        ended = "&ended=1" if exc.ended else ""
        return see_other(f"/login?next={_quote(exc.back_to)}{ended}")
    return JSONResponse({"error": "sign in to the console first"}, status_code=401)


async def _refused(request: Request, exc: Refused) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        return error_page(request, exc.status, exc.message)
    return JSONResponse({"error": exc.message}, status_code=exc.status)


def _quote(path: str) -> str:
    return quote(path, safe="/")
