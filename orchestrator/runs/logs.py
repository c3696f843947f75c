"""Reading a run's log (its stderr file) whole or from an offset, without loading floods."""

from __future__ import annotations

import errno
import os
import stat
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


def open_log(path: Path) -> tuple[int, int] | None:
    """The log open for reading, and its size now: what a download sends (a log still
    being written is sent as far as it went). None when there is no log (a run not
    started yet) or the name is not a plain file: nothing but the log is ever opened
    (no link followed, no FIFO waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a link where the log should be
            return None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return None
    return fd, info.st_size


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
    if len(data) == MAX_LIVE_BYTES:  # a full page, finished or not: it ends where a line does
        data = _whole_lines(data) or _whole_characters(data)
    elif not finished:
        data = _whole_lines(data)  # hold a half-written line back
    stamp = now()
    lines = data.decode(errors="replace").splitlines()
    more = finished and _size(path) > offset + len(data)
    return {
        "items": [{"timestamp": stamp, "log": line} for line in lines],
        "status_v2": RunStatus.RUNNING.value if more else status.value,
        "next_page_token": str(offset + len(data)),
        "next_available_in_seconds": 0 if (finished or data) else 0.25,
    }


def _whole_lines(data: bytes) -> bytes:
    """``data`` up to its last line end; empty when it holds no whole line."""
    end = data.rfind(b"\n")
    return data[: end + 1]


def _whole_characters(data: bytes) -> bytes:
    """A page that is all one line (longer than a page): cut before a UTF-8 character the
    page would split, so each page decodes on its own."""
    for start in range(len(data) - 1, max(len(data) - 4, 0) - 1, -1):
        lead = data[start]
        if lead & 0xC0 != 0x80:  # not a continuation byte: where the last character starts
            size = 1 if lead < 0x80 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
            return data if start + size <= len(data) else data[:start]
    return data


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
