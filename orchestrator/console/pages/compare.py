"""``/apps/<app>/runs/compare?run=ID&run=ID...``: runs side by side, as ``orch app run compare``.

The table is ``runs.compare``'s, fed what the CLI is fed: each run's information as the
API answers ``GET .../metadata`` (``api.runs.information``) and its input's digest, read
from the bytes the CLI would download (``input_raw``: a folder as its tar.gz). A plain GET,
so a comparison is a link to bookmark and share. The route is registered by ``pages.runs``
(its router comes before ``/apps/<app>/runs/<run>``, which would take ``compare`` for a run).

Every bad link gets the error page with one precise line, never a 500: a malformed run ID,
one given twice, fewer than 2 or more than 20 runs (400); an unknown app, an unknown run
or one of another app (404).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import FileResponse, Response

from orchestrator.api.fields import RUN_ID_RULE
from orchestrator.api.run_files import input_raw
from orchestrator.api.runs import information
from orchestrator.console.pages.base import state
from orchestrator.console.render import page
from orchestrator.errors import Invalid, NotFound, OrchError
from orchestrator.models import Run
from orchestrator.runs.compare import (
    MAX_RUNS,
    MIN_RUNS,
    cell_text,
    comparison,
    input_digest,
    reads_input,
    table_rows,
)
from orchestrator.services import Services

PICKED = "run"
"""The query parameter naming a run to compare, once per run (the runs list's checkboxes)."""
RUN_ID = re.compile(str(RUN_ID_RULE["pattern"]))


async def compare_page(request: Request, app_id: str) -> Response:
    svc = state(request).services
    await svc.apps.get(app_id)  # 404 for an unknown app
    run_ids = picked(request.query_params.getlist(PICKED))
    runs = [await _run(svc, app_id, run_id) for run_id in run_ids]
    infos = [await information(svc, run, statistics=False) for run in runs]
    pairs = zip(runs, infos, strict=True)
    inputs = {run.id: await _digest(svc, run, info["metadata"]) for run, info in pairs}
    rows = table_rows(comparison(infos, inputs), run_ids)
    return page(
        request,
        "compare.html",
        app_id=app_id,
        runs=runs,
        rows=rows,
        differ=sum(row.differ for row in rows),
        text=cell_text,
    )


def picked(given: Sequence[str]) -> list[str]:
    """The run IDs of a compare link, stripped and checked; ``Invalid`` names what is wrong."""
    run_ids = [value.strip() for value in given]
    for run_id in run_ids:
        if not RUN_ID.fullmatch(run_id):
            raise Invalid(f"{run_id!r} is no run ID: a run ID is run- and 16 letters or digits")
    twice = next((r for n, r in enumerate(run_ids) if r in run_ids[:n]), None)
    if twice is not None:
        raise Invalid(f"run {twice!r} is given twice: compare takes different runs")
    if not MIN_RUNS <= len(run_ids) <= MAX_RUNS:
        raise Invalid(
            f"compare takes {MIN_RUNS} to {MAX_RUNS} runs, {len(run_ids)} given: "
            "tick them in the app's runs list"
        )
    return run_ids


async def _run(svc: Services, app_id: str, run_id: str) -> Run:
    """The run, or ``NotFound`` saying whether it exists at all or is another app's."""
    try:
        return await svc.runs.get(app_id, run_id)
    except NotFound:
        other = await svc.store.read.runs.get(run_id)
        if other is None:
            raise
        raise NotFound(
            f"run {run_id!r} is a run of app {other.app_id!r}, not of {app_id!r}: "
            "compare runs of one app"
        ) from None


async def _digest(svc: Services, run: Run, meta: dict[str, Any]) -> str | None:
    """The run's input digest, from the bytes its download gives (as the CLI reads them)."""
    if not reads_input(meta):
        return input_digest(meta, None)
    try:
        response = await input_raw(svc, run)
    except OrchError:  # no input (a tracked run without one), its folder deleted since
        return None
    if not isinstance(response, FileResponse):
        return None
    return await anyio.to_thread.run_sync(_file_digest, meta, Path(response.path))


def _file_digest(meta: dict[str, Any], path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        data = None
    return input_digest(meta, data)
