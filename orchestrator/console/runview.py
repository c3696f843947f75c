"""Everything the run page shows about one run, gathered in one place.

The page handler and the live stream both render the run's panels from
``run_view``, so what a reload shows and what arrives live cannot differ.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from orchestrator.console.ensemble_panel import EnsemblePanel, ensemble_panel
from orchestrator.console.geojson import render_map
from orchestrator.console.viewers import PREVIEW_BYTES, Preview, preview, readable_log
from orchestrator.models import LIMIT_KINDS, Run, RunStatus
from orchestrator.runs.inputs import DIRECTORY_FORMATS
from orchestrator.services import Services

LOG_TAIL_BYTES = 64 * 1024
"""The page shows the log's last 64 KiB, when it opens and as it follows a running log (the
page gets this cap from the server); the whole log is a download."""
MAX_VISUAL_BYTES = PREVIEW_BYTES * 2
SMALL = 128 * 1024
VISUAL_SCHEMAS = ("plotly", "chartjs", "geojson")

_LIMIT_OF = {kind: field for field, kind in LIMIT_KINDS.items()}
"""The ``Limits`` field behind each limit failure kind."""


@dataclass
class Visual:
    label: str
    schema: str
    name: str
    figures: list[Any] = field(default_factory=list)
    svg: str = ""
    problem: str = ""


@dataclass
class RunView:
    run: Run
    input: Preview
    output: Preview | None
    statistics: list[tuple[str, Any]]
    stopped_by: str | None
    visuals: list[Visual]
    ensemble: EnsemblePanel | None = None


def stopped_by(run: Run) -> str | None:
    """The ``Limits`` field that ended a failed run, from its typed failure."""
    if run.status != RunStatus.FAILED or run.failure is None:
        return None
    return _LIMIT_OF.get(run.failure.kind)


def flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``{"result": {"value": 3}}`` → ``[("result.value", 3)]``; lists stay whole."""
    if not isinstance(data, dict):
        return [(prefix or "value", data)]
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            rows.extend(flatten(value, name))
        else:
            rows.append((name, value))
    return rows


async def run_view(svc: Services, run: Run) -> RunView:
    input_path = Path(run.input_path) if run.input_path else None
    directory = run.input_format in DIRECTORY_FORMATS
    shown_input = await _preview(input_path, run.input_size, directory)
    output = None
    if run.status.finished:
        output = await _preview(svc.runs.output_path(run), run.output_size, directory)
    return RunView(
        run=run,
        input=shown_input,
        output=output,
        statistics=flatten(run.statistics or run.metrics) if run.statistics or run.metrics else [],
        stopped_by=stopped_by(run),
        visuals=await _visuals(svc, run) if run.status.finished else [],
        ensemble=await ensemble_panel(svc, run),
    )


async def _preview(path: Path | None, size: int, directory: bool) -> Preview:
    if size <= SMALL:
        return preview(path, size, directory)
    return await anyio.to_thread.run_sync(preview, path, size, directory)


async def _visuals(svc: Services, run: Run) -> list[Visual]:
    visuals = []
    for asset in await svc.runs.assets(run):
        spec = asset.get("visual") or {}
        schema = str(spec.get("schema") or spec.get("visual_schema") or "")
        if schema not in VISUAL_SCHEMAS:
            continue
        visual = Visual(str(spec.get("label") or asset["name"]), schema, asset["name"])
        content = asset.get("content")
        if asset["size"] > MAX_VISUAL_BYTES:
            visual.problem = f"this visual is {asset['size'] // 1024} KiB: download the output"
        elif schema == "geojson":
            visual.svg, visual.problem = render_map(content)
        else:
            visual.figures = content if isinstance(content, list) else [content]
        visuals.append(visual)
    return visuals


def log_tail(path: Path, max_bytes: int = LOG_TAIL_BYTES) -> tuple[str, int, int]:
    """(the log's last ``max_bytes`` as readable text, the offset it ends at, bytes left
    out before it)."""
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            start = max(0, size - max_bytes)
            fh.seek(start)
            raw = fh.read(max_bytes)
    except FileNotFoundError:
        return "", 0, 0
    end = start + len(raw)
    if start and b"\n" in raw[:-1]:
        cut = raw.index(b"\n") + 1  # begin at a whole line
        raw, start = raw[cut:], start + cut
    return readable_log(raw.decode(errors="replace")), end, start


def tail_if_behind(
    path: Path, offset: int, max_bytes: int = LOG_TAIL_BYTES
) -> tuple[str, int, int] | None:
    """``log_tail`` when more than ``max_bytes`` were written past ``offset``, else None.

    The live page keeps only the last ``max_bytes`` of the log, as a freshly opened one
    does: streaming it the megabytes in between would only make it drop them again (and
    freeze the tab while it does)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    return log_tail(path, max_bytes) if size - offset > max_bytes else None


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
