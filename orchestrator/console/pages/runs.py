"""``/runs`` and ``/apps/<app>/runs``: newest first, filtered, paged by keyset, live.

The table is rendered whole on the server; ``/runs/stream`` then sends one
server-sent event per changed run that passes the page's filters (its new row), so
queued and running runs move on screen without a reload. A run that leaves a status
filter (it finished) is sent as ``gone``.

The page's stream URL carries the feed's ``mark`` from before the table was read, and
each event carries the mark it was sent at: the stream starts from the page's mark
and a reconnecting browser from its last event, so no change in between is missed.
It also says which columns the page's rows have (``ROW_SHAPE``): a streamed row has
the same.

A runs table of one app (``/apps/<app>/runs``, ``/runs?app=<app>``) has a checkbox per
run and a Compare button: the ticked runs open ``/apps/<app>/runs/compare`` (``compare``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from orchestrator.console.live import KEEPALIVE, KEEPALIVE_SECONDS, retry, sse
from orchestrator.console.pages import compare
from orchestrator.console.pages.base import app_url, pages_router, state
from orchestrator.console.render import ENV, page
from orchestrator.console.state import Console
from orchestrator.errors import NotFound, OrchError
from orchestrator.models import Run, RunStatus
from orchestrator.runs.search import RunPage, run_query
from orchestrator.store.overview import RunQuery

router = pages_router()

FILTERS = ("app", "instance", "status", "since", "until")
HIDE_EXPERIMENTS = "hide_experiments"
"""The query parameter ("1") that leaves out the runs of experiments: the checkbox's name."""

STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
SHOW_APP, SELECT = "show_app", "select"
ROW_SHAPE = (SHOW_APP, SELECT)
"""The stream URL's parameters ("1" or "0") saying whether the page's rows have an app
column and a checkbox to compare: on ``/runs?app=<app>`` the app column stays although
the stream filters by app."""


@router.get("/runs")
async def all_runs(request: Request) -> Response:
    return await _runs_page(request, fixed_app=None)


@router.get("/apps/{app_id}/runs")
async def app_runs(request: Request, app_id: str) -> Response:
    await state(request).services.apps.get(app_id)  # 404 for an unknown app
    return await _runs_page(request, fixed_app=app_id)


@router.get("/apps/{app_id}/runs/compare")
async def compare_runs(request: Request, app_id: str) -> Response:
    """Here, not in ``compare``'s own router: this router comes before ``run``'s
    ``/apps/<app>/runs/<run>``, which would take ``compare`` for a run ID."""
    return await compare.compare_page(request, app_id)


async def _runs_page(request: Request, fixed_app: str | None) -> Response:
    console = state(request)
    filters = {k: request.query_params.get(k, "").strip() for k in FILTERS}
    if fixed_app is not None:
        filters["app"] = fixed_app
    hide = hides_experiments(request.query_params)
    cursor = request.query_params.get("before") or None
    mark = console.feed.mark  # before the table is read: the stream sends what follows
    apps = await console.services.apps.list()
    known = filters["app"] in {a.id for a in apps}
    error, status = "", 200
    try:
        if filters["app"] and not known:  # say so, rather than "no runs match"
            raise NotFound(f"unknown app {filters['app']!r}: pick one from the list")
        query = run_query(*(filters[k] for k in FILTERS))
        result = await console.search.page(replace(query, experiment_runs=not hide), cursor)
    except OrchError as exc:
        result, error, status = RunPage([], None), exc.message, exc.status
    instances = await console.services.instances.list(filters["app"]) if known else []
    kept = {k: v for k, v in filters.items() if v and not (fixed_app and k == "app")}
    shown = {k: v for k, v in filters.items() if v}
    if hide:
        kept[HIDE_EXPERIMENTS] = shown[HIDE_EXPERIMENTS] = "1"
    show_app = fixed_app is None
    compare_url = app_url(filters["app"], "runs", "compare") if known and not error else None
    shape = {SHOW_APP: str(int(show_app)), SELECT: str(int(compare_url is not None))}
    return page(
        request,
        "runs.html",
        status=status,
        fixed_app=fixed_app,
        show_app=show_app,
        compare_url=compare_url,
        filters=filters,
        hide_experiments=hide,
        apps=apps,
        instances=instances,
        statuses=[s.value for s in RunStatus],
        runs=result.runs,
        older=_link(request.url.path, kept, result.next_cursor) if result.next_cursor else None,
        newest=_link(request.url.path, kept, None) if cursor else None,
        live_url="/runs/stream?" + urlencode({**shown, **shape, "mark": mark}),
        first_page=cursor is None,
        error=error,
    )


def hides_experiments(params: Mapping[str, str]) -> bool:
    """Whether a runs page (or its stream) leaves out experiment runs: ``?hide_experiments=1``."""
    return params.get(HIDE_EXPERIMENTS, "").strip() not in ("", "0")


def _link(path: str, query: dict[str, str], cursor: str | None) -> str:
    params = {**query, **({"before": cursor} if cursor else {})}
    return f"{path}?{urlencode(params)}" if params else path


def row_html(run: Run, show_app: bool, select: bool = False) -> str:
    macro = ENV.get_template("macros.html").module.run_row  # type: ignore[attr-defined]
    return str(macro(run, show_app, select))


def _flag(params: Mapping[str, str], name: str, default: bool) -> bool:
    value = params.get(name, "").strip()
    return default if not value else value != "0"


@router.get("/runs/stream")
async def runs_stream(request: Request) -> StreamingResponse:
    filters = [request.query_params.get(k, "").strip() for k in FILTERS]
    hide = hides_experiments(request.query_params)
    query = replace(run_query(*filters), experiment_runs=not hide)
    params = request.query_params
    show_app = _flag(params, SHOW_APP, default=not params.get("app"))
    select = _flag(params, SELECT, default=False)
    since = request.headers.get("last-event-id") or params.get("mark", "")
    return StreamingResponse(
        _run_changes(state(request), query, (show_app, select), since),
        media_type="text/event-stream",
        headers=STREAM_HEADERS,
    )


async def _run_changes(
    console: Console, query: RunQuery, shape: tuple[bool, bool], since: str
) -> AsyncIterator[str]:
    """``shape``: (an app column, a checkbox) in each row, as the page's rows have."""
    with console.feed.subscribe(since) as sub:
        yield retry(1000)
        while not sub.overflowed:
            batch = await sub.next_batch(KEEPALIVE_SECONDS, console.stopping)
            mark = console.feed.mark  # the batch holds every change up to here
            if batch is None:
                return
            if not batch:
                yield KEEPALIVE
            for run_id in [] if sub.overflowed else batch:
                run = await console.services.store.read.runs.get(run_id)
                if run is not None and await console.search.matches(query, run_id):
                    html = row_html(run, *shape)
                    data = {"id": run.id, "status": run.status.value, "html": html}
                    yield sse("run", data, mark)
                elif query.status is not None:
                    yield sse("gone", {"id": run_id}, mark)
        yield sse("stale", {})
