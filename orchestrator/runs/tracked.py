"""Tracked (external) runs: a run that happened elsewhere, recorded here as it was.

The SDK's ``track_run`` uploads the input, the output, the log, statistics, metrics
and assets through upload URLs, then creates the run with a ``result`` naming the
uploads, the status (succeeded or failed) and the duration. Nothing executes: the
run is written once, already finished (``RunStates.create``; creation into a
finished status is an edge of ``RUN_TRANSITIONS``), with ``run_type`` external.

Where the run's files go is where an executed run leaves them (``stdout`` holds a
JSON output, ``work/outputs`` a folder output, ``stderr`` the log), so reading a
tracked run is reading any run. Assets uploaded on their own go to ``assets.json``.
Statistics, metrics and assets found in a JSON output win over uploaded ones, as on
Nextmv (the SDK says the separate fields are for folder formats).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from orchestrator import standard_json
from orchestrator.errors import Invalid
from orchestrator.ids import check_label, new_id
from orchestrator.models import DEVINT, Failure, FailureKind, Run, RunStatus, RunType, now
from orchestrator.packaging.unpack import safe_extract
from orchestrator.runs.inputs import DIRECTORY_FORMATS, check_format
from orchestrator.runs.metrics import reported
from orchestrator.runs.workspace import Workspace, output_dir_name
from orchestrator.uploads import UploadService

if TYPE_CHECKING:
    from orchestrator.runs.service import RunRequest

TRACKED_ASSETS = "assets.json"
"""Assets uploaded apart from the output, in the run's folder."""
PARSE_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class TrackedResult:
    """The SDK's ``ExternalRunResult``: what happened, and the uploads that hold it."""

    status: RunStatus
    duration_ms: float | None = None
    error_message: str = ""
    output_upload_id: str | None = None
    log_upload_id: str | None = None
    statistics_upload_id: str | None = None
    metrics_upload_id: str | None = None
    assets_upload_id: str | None = None

    def __post_init__(self) -> None:
        if self.status not in (RunStatus.SUCCEEDED, RunStatus.FAILED):
            raise Invalid(f"a tracked run's status is succeeded or failed, got {self.status!r}")
        if self.duration_ms is not None and self.duration_ms < 0:
            raise Invalid(f"a tracked run's duration cannot be negative: {self.duration_ms}")


@dataclass(frozen=True)
class ArchiveLimits:
    """What a folder output may unpack to (the limits of uploaded inputs)."""

    max_bytes: int
    max_files: int


def unpushed(req: RunRequest) -> Run:
    """A tracked run of an app with nothing pushed: there is no executable to resolve
    (``executable_id`` stays empty), the run is filed under devint. Everything else the
    request says is kept as ``RunService.prepare`` keeps it on a pushed app: the managed
    input and the cloned run (its ``tracking``), the experiment it joins, its options."""
    check_label("run", req.name, req.description)
    return Run(
        id=new_id("run"),
        app_id=req.app_id,
        instance_id=DEVINT,
        executable_id="",
        name=req.name,
        description=req.description,
        options=dict(req.options),
        option_sources=dict.fromkeys(req.options, "run"),
        request_options=dict(req.options),
        input_format=check_format(req.input_format or "json"),
        experiment_id=req.experiment_id,
        experiment_type=req.experiment_type,
        input_id=req.input_id,
        cloned_run_id=req.cloned_run_id,
    )


async def record(
    run: Run, run_dir: Path, result: TrackedResult, uploads: UploadService, limits: ArchiveLimits
) -> None:
    """Fill ``run`` (prepared, its input stored) with what the tracked run reported."""
    ws = Workspace.of(run_dir)
    doc: Any = None
    if result.output_upload_id:
        path = await _take(uploads, run.app_id, result.output_upload_id)
        run.output_size, doc = await anyio.to_thread.run_sync(
            _place_output, path, ws, run.input_format, limits
        )
    if result.log_upload_id:
        os.replace(await _take(uploads, run.app_id, result.log_upload_id), ws.stderr)
    # Statistics and metrics given on their own win over those inside the output: the
    # caller passed them for this run on purpose (``TrackedRun(statistics=...)``).
    stats: Any = None
    if result.statistics_upload_id:
        given = await _json_upload(uploads, run.app_id, result.statistics_upload_id)
        stats = given.get("statistics", given) if isinstance(given, dict) else None
    if not isinstance(stats, dict):
        stats = doc.get("statistics") if isinstance(doc, dict) else None
    metrics = None
    if result.metrics_upload_id:
        metrics = reported(await _json_upload(uploads, run.app_id, result.metrics_upload_id), True)
    if metrics is None:
        metrics = reported(doc)
    if result.assets_upload_id:
        given = await _json_upload(uploads, run.app_id, result.assets_upload_id)
        items = given.get("assets", given) if isinstance(given, dict) else given
        if not isinstance(items, list):
            raise Invalid("tracked assets must be a list of assets, or {'assets': [...]}")
        (run_dir / TRACKED_ASSETS).write_text(json.dumps(items))
    run.statistics = stats if isinstance(stats, dict) else None
    run.metrics = metrics
    run.run_type, run.status = RunType.EXTERNAL, result.status
    run.options = {k: v for k, v in run.options.items() if run.option_sources.get(k) == "run"}
    run.option_sources = dict.fromkeys(run.options, "run")  # what it was given, no defaults
    run.duration_ms = result.duration_ms
    run.started_at = run.ended_at = now()
    if result.status == RunStatus.FAILED:
        run.failure = Failure(FailureKind.EXTERNAL, detail=result.error_message or "failed")


async def _take(uploads: UploadService, app_id: str, upload_id: str) -> Path:
    return Path((await uploads.take_input(app_id, upload_id)).path)


async def _json_upload(uploads: UploadService, app_id: str, upload_id: str) -> Any:
    path = await _take(uploads, app_id, upload_id)
    try:
        return standard_json.loads(path.read_bytes())
    except ValueError as exc:
        raise Invalid(f"upload {upload_id!r} is not valid JSON: {exc}") from None
    finally:
        path.unlink(missing_ok=True)


def _place_output(upload: Path, ws: Workspace, fmt: str, limits: ArchiveLimits) -> tuple[int, Any]:
    """Move the output where a run's output lives; (its size, the parsed JSON or None)."""
    if fmt in DIRECTORY_FORMATS:
        folder = Path(ws.work, output_dir_name(fmt))
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            size = safe_extract(
                upload, folder, max_bytes=limits.max_bytes, max_files=limits.max_files
            )
        finally:
            upload.unlink(missing_ok=True)
        return size, None
    stdout = Path(ws.stdout)
    stdout.parent.mkdir(parents=True, exist_ok=True)
    os.replace(upload, stdout)
    size = stdout.stat().st_size
    if size > PARSE_LIMIT:
        return size, None
    try:
        return size, standard_json.loads(stdout.read_bytes())
    except ValueError:
        return size, None  # a text output: still the output
