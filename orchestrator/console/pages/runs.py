"""``/runs`` and ``/apps/<app>/runs``: newest first, filtered, paged by keyset, live.

The table is rendered whole on the server; ``/runs/stream`` then sends one
server-sent event per changed run that passes the page's filters (its new row), so
queued and running runs move on screen without a reload. A run that leaves a status
filter (it finished) is sent as ``gone``.

The page's stream URL carries the feed's ``mark`` from before the table was read, and
each event carries the mark it was sent at: the stream starts from the page's mark
and a reconnecting browser from its last event, so no change in between is missed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from orchestrator.console.live import KEEPALIVE, KEEPALIVE_SECONDS, retry, sse
from orchestrator.console.pages.base import pages_router, state
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


@router.get("/runs")
async def all_runs(request: Request) -> Response:
    return await _runs_page(request, fixed_app=None)


@router.get("/apps/{app_id}/runs")
async def app_runs(request: Request, app_id: str) -> Response:
    await state(request).services.apps.get(app_id)  # 404 for an unknown app
    return await _runs_page(request, fixed_app=app_id)


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
    return page(
        request,
        "runs.html",
        status=status,
        fixed_app=fixed_app,
        filters=filters,
        hide_experiments=hide,
        apps=apps,
        instances=instances,
        statuses=[s.value for s in RunStatus],
        runs=result.runs,
        older=_link(request.url.path, kept, result.next_cursor) if result.next_cursor else None,
        newest=_link(request.url.path, kept, None) if cursor else None,
        live_url="/runs/stream?" + urlencode({**shown, "mark": mark}),
        first_page=cursor is None,
        error=error,
    )


def hides_experiments(params: Mapping[str, str]) -> bool:
    """Whether a runs page (or its stream) leaves out experiment runs: ``?hide_experiments=1``."""
    return params.get(HIDE_EXPERIMENTS, "").strip() not in ("", "0")


def _link(path: str, query: dict[str, str], cursor: str | None) -> str:
    params = {**query, **({"before": cursor} if cursor else {})}
    return f"{path}?{urlencode(params)}" if params else path


def row_html(run: Run, show_app: bool) -> str:
    macro = ENV.get_template("macros.html").module.run_row  # type: ignore[attr-defined]
    return str(macro(run, show_app))


@router.get("/runs/stream")
async def runs_stream(request: Request) -> StreamingResponse:
    filters = [request.query_params.get(k, "").strip() for k in FILTERS]
    hide = hides_experiments(request.query_params)
    query = replace(run_query(*filters), experiment_runs=not hide)
    show_app = not request.query_params.get("app")
    since = request.headers.get("last-event-id") or request.query_params.get("mark", "")
    return StreamingResponse(
        _run_changes(state(request), query, show_app, since),
        media_type="text/event-stream",
        headers=STREAM_HEADERS,
    )


async def _run_changes(
    console: Console, query: RunQuery, show_app: bool, since: str
) -> AsyncIterator[str]:
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
                    html = row_html(run, show_app)
                    data = {"id": run.id, "status": run.status.value, "html": html}
                    yield sse("run", data, mark)
                elif query.status is not None:
                    yield sse("gone", {"id": run_id}, mark)
        yield sse("stale", {})
