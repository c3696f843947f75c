"""The quiet period: whether a drop may still be being written, and how long it waits.

A package is taken under its final name, but a writer may still be at work on it (``cp``
writes in place; a download renames only at its end). One whose last change was a write
less than ``SETTLE_SECONDS`` ago, or that a process holds open for writing, waits; a
folder made in place waits until nothing in it changed for ``SETTLE_SECONDS``. A drop
that waits holds its app's later drops back (``inbox_queue``), so one that is written for
ever (a copy that never ends, a log tailed into the folder) would hold them back without a
word: after ``WRITING_NOTICE_SECONDS`` a ``.reason`` beside it says so (``inbox``).
"""

from __future__ import annotations

import os
import time

from orchestrator.inbox_filing import Drop, looks, open_for_writing
from orchestrator.inbox_unpushed import newest_change

SETTLE_SECONDS = 2.0
"""A package last written (not renamed) under its final name less than this ago may
still be being written: it waits."""
WRITER_PATIENCE_SECONDS = 60.0
"""A package held open for writing waits for its writer, unless it has not changed for
this long (a writer that never closes it must not hold it back for ever)."""
WRITING_NOTICE_SECONDS = 60.0
"""A drop still being written after waiting this long is said to be, in a ``.reason``
beside it: its app's later drops wait behind it. As long as ``WRITER_PATIENCE_SECONDS``:
a writer that has kept at it for that long is no longer a copy about to end."""


def folder_wait(drop: Drop) -> float | None:
    """Seconds a folder made in place waits (something in it changed less than
    ``SETTLE_SECONDS`` ago), else ``None``. One moved in whole goes at once."""
    if not drop.in_place:
        return None
    age = time.time() - newest_change(drop.source) / 1e9
    return max(SETTLE_SECONDS - age, 0.05) if age < SETTLE_SECONDS else None


def file_wait(drop: Drop, st: os.stat_result) -> tuple[float | None, bool]:
    """Seconds to wait if ``drop`` may still be being written, else ``None``; and
    whether it may go at once only as a whole archive.

    One written in place (or renamed in within the clock tick of its last write,
    which its times cannot tell apart) is pushed at once if it is a whole archive no
    one holds open (``WholeCheck``, as it is copied out: its bytes are read once): a
    script that builds a package and moves it in waited the whole settle time."""
    age = time.time() - st.st_mtime_ns / 1e9
    changed, drop.seen = looks(st) != drop.seen, looks(st)
    writer = age < WRITER_PATIENCE_SECONDS and open_for_writing(drop.source)
    if age < SETTLE_SECONDS and (drop.in_place or changed):
        if changed or writer:
            return settle_left(st), False
        return None, True
    return (SETTLE_SECONDS if writer else None), False


def changed_since(drop: Drop, read: tuple[int, int]) -> bool:
    """Whether the file no longer looks as it did when it was read (a writer went on
    after the read: what was pushed is not the whole package)."""
    try:
        now = looks(os.stat(drop.source))
    except OSError:
        return False
    if now == read:
        return False
    drop.seen, drop.in_place = read, True
    return True


def settle_left(st: os.stat_result) -> float:
    """What is left of the settle time of a file last written at ``st``'s mtime."""
    return max(SETTLE_SECONDS - (time.time() - st.st_mtime_ns / 1e9), 0.05)


def recently_changed(drop: Drop) -> bool:
    try:
        return time.time() - drop.source.stat().st_mtime < SETTLE_SECONDS
    except OSError:
        return False


def writing_for_long(drop: Drop) -> bool:
    """``drop`` waits for its writer once more: whether it has waited so for
    ``WRITING_NOTICE_SECONDS`` or more (then it is said, beside it)."""
    now = time.monotonic()
    if drop.writing_since is None:
        drop.writing_since = now
    return now - drop.writing_since >= WRITING_NOTICE_SECONDS


def still_written(drop: Drop) -> str:
    """The ``.reason`` of a drop written for long (the same each time it is said: said
    again, it is not written or logged again)."""
    what = "something in it keeps changing" if drop.folder else "it keeps changing"
    return (
        f"not pushed yet: {drop.name} is still being written ({what}, or a process holds "
        f"it open for writing, for over {WRITING_NOTICE_SECONDS:g} s); the later drops of "
        f"push/{drop.app_id}/ wait for it, so that devint ends on the latest; it is pushed "
        f"once nothing has written it for {SETTLE_SECONDS:g} s"
    )
