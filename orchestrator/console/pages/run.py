"""``/apps/<app>/runs/<run>``: one run, its input, output, visuals and log, live.

``.../stream`` sends the run's panels again at every status change (``run``, with
``has_log``: the page offers the log's download only once there is one),
the log's new lines while it runs (``log``) and ``end`` once it is over. The event
id carries the log offset, so a reconnecting browser resumes where it stopped.

The page shows at most the log's last ``LOG_TAIL_BYTES`` (its ``data-log-cap``), live
as when it opens: a stream that fell further behind than that (a model writing
megabytes) skips to the log's tail in one ``log`` event with ``reset`` (the text
replaces the page's) and ``skipped`` (the bytes before it, for the page's hint).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from orchestrator.console.live import KEEPALIVE, KEEPALIVE_SECONDS, retry, sse
from orchestrator.console.pages.base import pages_router, state
from orchestrator.console.pages.run_actions import asking_cancel
from orchestrator.console.pages.runs import STREAM_HEADERS
from orchestrator.console.render import page, render
from orchestrator.console.runview import LOG_TAIL_BYTES, log_tail, run_view, tail_if_behind
from orchestrator.console.state import Console
from orchestrator.console.viewers import readable_log
from orchestrator.errors import NotFound
from orchestrator.models import Run, RunType
from orchestrator.runs.logs import read_live

router = pages_router()

LOG_POLL_SECONDS = 0.2
"""How often a running run's log is checked for new lines."""


async def _context(console: Console, run: Run) -> dict[str, Any]:
    svc = console.services
    return {
        "view": await run_view(svc, run),
        "instances": await svc.instances.list(run.app_id),
        "default_instance": (await svc.apps.get(run.app_id)).default_instance_id,
    }


@router.get("/apps/{app_id}/runs/{run_id}")
async def run_page(request: Request, app_id: str, run_id: str) -> Response:
    console = state(request)
    run = await console.services.runs.get(app_id, run_id)
    log_path = console.services.runs.log_path(run)
    log, offset, skipped = log_tail(log_path)
    return page(
        request,
        "run.html",
        run=run,
        has_log=log_path.exists(),
        log=log,
        log_offset=offset,
        log_skipped=skipped,
        log_cap=LOG_TAIL_BYTES,
        asking_cancel=asking_cancel(request),
        **await _context(console, run),
    )


@router.get("/apps/{app_id}/runs/{run_id}/stream")
async def run_stream(request: Request, app_id: str, run_id: str) -> StreamingResponse:
    console = state(request)
    await console.services.runs.get(app_id, run_id)  # 404 now, not inside the stream
    offset, known = _resume(request)
    return StreamingResponse(
        _run_events(console, request, app_id, run_id, offset, known),
        media_type="text/event-stream",
        headers=STREAM_HEADERS,
    )


def _resume(request: Request) -> tuple[int, str]:
    """(log offset, status the page shows): from the last event id, else the query."""
    last = request.headers.get("last-event-id") or ""
    offset_text, _, status = last.partition(".")
    if not offset_text:
        offset_text = request.query_params.get("offset", "0")
        status = request.query_params.get("status", "")
    return (int(offset_text) if offset_text.isdigit() else 0), status


async def _run_events(
    console: Console, request: Request, app_id: str, run_id: str, offset: int, known: str
) -> AsyncIterator[str]:
    svc = console.services
    with console.feed.subscribe() as sub:
        # Read only once subscribed: a change between the page's render and this point
        # would otherwise be lost, and the page would show "running" for good. An
        # ensemble's children may have changed too, so its panels are sent at once.
        try:
            run = await svc.runs.get(app_id, run_id)
        except NotFound:
            yield sse("gone", {})
            return
        log_path = svc.runs.log_path(run)
        children = await _children(console, run)
        stale = bool(children)
        yield retry(1000)
        while True:
            if run.status.value != known or stale:
                known, stale = run.status.value, False
                panels = render(
                    "_run_panels.html", csrf=_csrf(request), **await _context(console, run)
                )
                data = {"status": known, "html": panels, "has_log": log_path.exists()}
                yield sse("run", data, f"{offset}.{known}")
            tail = tail_if_behind(log_path, offset)
            if tail is not None:
                text, offset, skipped = tail
                reset = {"text": text, "reset": True, "skipped": skipped}
                yield sse("log", reset, f"{offset}.{known}")
            chunk = read_live(log_path, offset, run.status)
            if chunk["items"]:
                offset = int(chunk["next_page_token"])
                text = readable_log("".join(item["log"] + "\n" for item in chunk["items"]))
                yield sse("log", {"text": text}, f"{offset}.{known}")
            more_log = chunk["status_v2"] == "running" and run.status.finished
            if run.status.finished and not more_log:
                yield sse("end", {"status": known}, f"{offset}.{known}")
                return
            if more_log:
                continue
            wait = LOG_POLL_SECONDS if run.status.value == "running" else KEEPALIVE_SECONDS
            batch = await sub.next_batch(wait, console.stopping)
            if batch is None:
                return
            if not batch and run.status.value != "running":
                yield KEEPALIVE
            if run.id in (batch or []):
                try:
                    run = await svc.runs.get(run.app_id, run.id)
                except NotFound:
                    yield sse("gone", {})
                    return
            stale = not children.isdisjoint(batch or [])


async def _children(console: Console, run: Run) -> set[str]:
    """An ensemble run's children: a change of theirs re-renders its panels (their
    statuses, then the winner), not only a change of its own."""
    if run.run_type != RunType.ENSEMBLE:
        return set()
    try:
        view = await console.services.ensemble_runs.view(run.app_id, run.id)
    except NotFound:
        return set()
    return {child.id for child in view.children}


def _csrf(request: Request) -> str:
    session = getattr(request.state, "session", None)
    return session.csrf if session is not None else ""
