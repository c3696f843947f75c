"""What ``orch app run`` does around the HTTP calls: input in, waiting, output out.

Kept apart from the command definitions (``run``) so each module stays small:
this one knows bytes and paths, that one knows flags.
"""

from __future__ import annotations

import json
import shutil
import sys
import tarfile
from pathlib import Path
from typing import Any

from rich.markup import escape

from orchestrator.cli.output import fail, print_json, say
from orchestrator.client import OrchClient
from orchestrator.models import RunStatus

INLINE_MAX = 5 * 1024 * 1024
"""Inputs up to this size go inline as JSON; above it (as the SDK does) through an upload."""
WAIT_SECONDS = 60.0
EXIT_CODES = {RunStatus.SUCCEEDED: 0, RunStatus.FAILED: 1, RunStatus.CANCELED: 2}
ARCHIVE_FORMATS = ("multi-file", "csv-archive")


def runs_path(app_id: str, run_id: str | None = None, tail: str = "") -> str:
    base = f"/v1/applications/{app_id}/runs"
    return base + (f"/{run_id}" if run_id else "") + tail


def configuration_body(priority: int | None, limits: dict[str, Any]) -> dict[str, Any]:
    configuration: dict[str, Any] = {}
    if priority is not None:
        configuration["queuing"] = {"priority": priority}
    if limits:
        configuration["limits"] = limits
    return configuration


def prepare_input(
    api: OrchClient, app_id: str, source: str | None, fmt: str | None, tmp: Path
) -> tuple[dict[str, Any], str | None]:
    """The input part of the run body, and the input format to declare.

    Small JSON travels inline; text, folders and anything large are uploaded
    (streamed from disk) and named by their ``upload_id``.
    """
    path = _input_file(source, tmp)
    if path is None:
        return {}, fmt
    if path.is_dir():
        archive = _tar(path, tmp / "input.tar.gz")
        return {"upload_id": _upload(api, app_id, archive)}, fmt or "multi-file"
    if fmt in (None, "json") and path.stat().st_size <= INLINE_MAX:
        value = _json_or_none(path)
        if isinstance(value, dict | list):
            return {"input": value}, fmt
        if fmt is None and value is None:
            fmt = "text"
    return {"upload_id": _upload(api, app_id, path)}, fmt


def _input_file(source: str | None, tmp: Path) -> Path | None:
    """The input as a path; stdin is spooled to a file first (it may be large)."""
    if source is not None and source != "-":
        path = Path(source).expanduser()
        if not path.exists():
            fail(f"input {source} does not exist")
        return path
    if source is None and (sys.stdin is None or sys.stdin.isatty()):
        return None
    spooled = tmp / "stdin"
    with spooled.open("wb") as fh:
        shutil.copyfileobj(sys.stdin.buffer, fh)
    return spooled if spooled.stat().st_size else None


def _json_or_none(path: Path) -> Any:
    try:
        with path.open("rb") as fh:
            return json.load(fh)
    except (ValueError, UnicodeDecodeError):
        return None


def _tar(folder: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tar:
        for item in sorted(folder.rglob("*")):
            if item.is_file():
                tar.add(item, arcname=item.relative_to(folder).as_posix())
    return dest


def _upload(api: OrchClient, app_id: str, path: Path) -> str:
    target = api.post(runs_path(app_id, tail="/uploadurl"))
    api.upload(target["upload_url"], path)
    return str(target["upload_id"])


def wait_finished(api: OrchClient, app_id: str, run_id: str) -> dict[str, Any]:
    """Long-poll the metadata: the daemon answers the moment the run ends (no sleep loop)."""
    while True:
        info: dict[str, Any] = api.get(
            runs_path(app_id, run_id, "/metadata"),
            params={"wait": WAIT_SECONDS},
            timeout=WAIT_SECONDS + 30,
        )
        if RunStatus(info["metadata"]["status_v2"]).finished:
            return info


def deliver(
    api: OrchClient,
    app_id: str,
    info: dict[str, Any],
    output: Path | None,
    as_json: bool,
    logs: bool,
) -> int:
    """Print what a finished run produced; returns the exit code its status maps to."""
    status = RunStatus(info["metadata"]["status_v2"])
    if as_json:
        print_json(api.get(runs_path(app_id, info["id"])))
    if status == RunStatus.SUCCEEDED and (output is not None or not as_json):
        _write_output(api, app_id, info, output)
    if logs:
        sys.stderr.write(api.get(runs_path(app_id, info["id"], "/logs"))["log"])
    say(escape(_summary(info, full_error=not logs)))
    return EXIT_CODES[status]


def _summary(info: dict[str, Any], full_error: bool) -> str:
    """One line; the daemon's error may go on with the log's tail, kept unless --logs showed it."""
    meta = info["metadata"]
    line = f"run {info['id']} {meta['status_v2']} in {(meta.get('duration') or 0) / 1000:.2f} s"
    if meta.get("peak_memory_mb") is not None:
        line += f", peak memory {meta['peak_memory_mb']:.1f} MiB"
    error = meta.get("error") or ""
    if error:
        line += f": {error if full_error else error.splitlines()[0]}"
    return line


def _write_output(api: OrchClient, app_id: str, info: dict[str, Any], dest: Path | None) -> None:
    is_archive = info["metadata"]["format"]["output"]["type"] in ARCHIVE_FORMATS
    if dest is None and is_archive and sys.stdout.isatty():
        fail("the output is a tar.gz archive: write it to a file with --output FILE")
    download(api, runs_path(app_id, info["id"], "/output"), dest)


def download(
    api: OrchClient, path: str, dest: Path | None, params: dict[str, str] | None = None
) -> None:
    """Stream a file from the daemon to ``dest``, or straight to stdout."""
    if dest is not None:
        with dest.open("wb") as fh:
            api.download(path, fh, params)
        say(f"wrote {dest}")
        return
    sys.stdout.flush()
    tail = api.download(path, sys.stdout.buffer, params)
    if sys.stdout.isatty() and tail and not tail.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")  # keep the prompt off the output's last line
    sys.stdout.buffer.flush()
