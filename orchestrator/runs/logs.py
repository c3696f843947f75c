"""Reading a run's log (its stderr file) whole or from an offset, without loading floods."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from orchestrator.models import RunStatus, now

MAX_LOG_BYTES = 5 * 1024 * 1024
MAX_LIVE_BYTES = 1024 * 1024


def read_log(path: Path, max_bytes: int = MAX_LOG_BYTES) -> str:
    """The log; a flood is cut to its last ``max_bytes`` with a note saying so."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return ""
    with path.open("rb") as fh:
        if size <= max_bytes:
            return fh.read().decode(errors="replace")
        fh.seek(size - max_bytes)
        tail = fh.read().decode(errors="replace")
    skipped = size - max_bytes
    return f"[orch: {skipped} earlier bytes of this {size}-byte log are not shown]\n" + tail


def read_live(path: Path, offset: int, status: RunStatus) -> dict[str, Any]:
    """Complete lines written since ``offset``; the token of the next call is the new offset.

    An offset past the log's end (a token from nowhere: logs only grow) reads as the end,
    where ``seek`` would fail beyond the file system's largest file."""
    data = b""
    try:
        with path.open("rb") as fh:
            offset = min(max(0, offset), os.fstat(fh.fileno()).st_size)
            fh.seek(offset)
            data = fh.read(MAX_LIVE_BYTES)
    except FileNotFoundError:
        pass
    finished = status.finished
    if not finished and b"\n" in data and len(data) < MAX_LIVE_BYTES:
        data = data[: data.rindex(b"\n") + 1]  # hold a half-written line back
    elif not finished and len(data) < MAX_LIVE_BYTES:
        data = b""
    stamp = now()
    lines = data.decode(errors="replace").splitlines()
    more = finished and _size(path) > offset + len(data)
    return {
        "items": [{"timestamp": stamp, "log": line} for line in lines],
        "status_v2": RunStatus.RUNNING.value if more else status.value,
        "next_page_token": str(offset + len(data)),
        "next_available_in_seconds": 0 if (finished or data) else 0.25,
    }


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
