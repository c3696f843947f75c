"""``disk_mb``: what a run has written, measured, and cut back when it is too much.

No kernel quota covers one folder on the file systems orch runs on (ext4 here
has no project quotas enabled), so usage is sampled: one thread walks the
folders of every run with a limit, each at a pace set by what its walk costs
(a walk may take at most ~5 % of that thread's time: a run of a few files is
measured every 0.1 s, one of 100,000 files every few seconds), and never sooner
than the run could have filled what is left of its limit writing at
``FASTEST_WRITE`` (so a run far below its limit, as with the default 10 GiB, is
looked at every 2 s, and a run shorter than that only once, when it ends). Usage is the
blocks allocated (``st_blocks``), so sparse files count what they really hold
and a hard link counts once; every entry counts at least ``ENTRY_BYTES`` (inodes).
``output_mb`` still caps any single file at once.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable

from orchestrator import trees
from orchestrator.disk import ENTRY_BYTES
from orchestrator.runs.cgroups import MIB
from orchestrator.runs.process import StrPath
from orchestrator.runs.workspace import DaemonLinks, daemon_links
from orchestrator.threads import show_name

log = logging.getLogger(__name__)

FIRST_CHECK_SECONDS = 0.05
MIN_INTERVAL_SECONDS = 0.1
MAX_INTERVAL_SECONDS = 2.0
WALK_SHARE = 0.05
FASTEST_WRITE = 4 * 1024 * MIB
"""Bytes per second a run is assumed unable to exceed (page cache included): the pace
at which the headroom below a limit can shrink."""
KEPT_LOG_BYTES = 64 * 1024
"""What stays of the log after a breach: its end, where the last words are."""


class TooMany(Exception):
    """A walk met more entries than its budget (the caller walks again off the loop)."""


def usage_bytes(paths: Iterable[StrPath], budget: int | None = None) -> int:
    """Bytes allocated beneath ``paths`` (symlinks not followed, hard links once, each
    entry at least ``ENTRY_BYTES``), at any depth (``trees``: a folder past ``PATH_MAX``
    is counted too)."""
    total, seen, count = 0, set(), 0

    def add(info: os.stat_result, where: StrPath) -> None:
        nonlocal total, count
        count += 1
        if budget is not None and count > budget:
            raise TooMany(where)
        if info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode):
            if (info.st_dev, info.st_ino) in seen:
                return
            seen.add((info.st_dev, info.st_ino))
        total += max(info.st_blocks * 512, ENTRY_BYTES)

    for path in paths:
        try:
            info = os.lstat(path)
        except OSError:
            continue
        add(info, path)
        if not stat.S_ISDIR(info.st_mode):
            continue
        with contextlib.suppress(trees.TreeMoved):  # moved by the model mid-walk: the next walk
            for folder in trees.folders_bottom_up(path):
                for name, _ in folder.entries:
                    with contextlib.suppress(OSError):
                        add(os.stat(name, dir_fd=folder.fd, follow_symlinks=False), path)
    return total


class Watched:
    """One run under watch; ``stop()`` when its processes are gone."""

    def __init__(
        self, paths: tuple[str, ...], limit_bytes: int, on_breach: Callable[[float], None]
    ):
        self.paths, self.limit, self.on_breach = paths, limit_bytes, on_breach
        self.stopped = False
        self.last_walk_seconds = 0.0

    def stop(self) -> None:
        self.stopped = True


def next_check(limit: int, used: int, soonest: float) -> float:
    """Seconds to the next walk: not before ``soonest``, nor before the run could have
    written past ``limit`` from ``used``, and never later than ``MAX_INTERVAL_SECONDS``."""
    return min(max(soonest, (limit - used) / FASTEST_WRITE), MAX_INTERVAL_SECONDS)


class DiskWatch:
    """The thread that measures every watched run when it is due; started on first use."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Watched]] = []
        self._wake = threading.Condition()
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(
        self, paths: tuple[str, ...], limit_mb: int, on_breach: Callable[[float], None]
    ) -> Watched:
        """``on_breach(measured MiB)`` is called from the watch thread, once."""
        entry = Watched(paths, limit_mb * MIB, on_breach)
        with self._wake:
            first = time.monotonic() + next_check(entry.limit, 0, FIRST_CHECK_SECONDS)
            sooner = not self._due or first < self._due[0][0]
            heapq.heappush(self._due, (first, next(self._order), entry))
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="orch-disk", daemon=True)
                self._thread.start()
            elif sooner:  # else the thread wakes in time anyway: no wake-up on a run's path
                self._wake.notify()
        return entry

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        show_name()
        while (entry := self._next()) is not None:
            began = time.monotonic()
            try:
                used = usage_bytes(entry.paths)
            except Exception:  # a measuring bug must not stop the thread
                log.exception("disk usage of %s could not be measured", entry.paths)
                continue
            entry.last_walk_seconds = spent = time.monotonic() - began
            if used > entry.limit:
                entry.stop()
                entry.on_breach(used / MIB)
                continue
            pause = next_check(entry.limit, used, max(spent / WALK_SHARE, MIN_INTERVAL_SECONDS))
            with self._wake:
                heapq.heappush(self._due, (time.monotonic() + pause, next(self._order), entry))

    def _next(self) -> Watched | None:
        """The next entry due (waiting for it), skipping stopped ones; None once closed."""
        with self._wake:
            while not self._closed:
                while self._due and self._due[0][2].stopped:
                    heapq.heappop(self._due)
                if not self._due:
                    self._wake.wait()
                    continue
                delay = self._due[0][0] - time.monotonic()
                if delay <= 0:
                    return heapq.heappop(self._due)[2]
                self._wake.wait(delay)
            return None


def cut_back(
    folders: Iterable[StrPath], files: Iterable[StrPath], log_file: StrPath | None
) -> None:
    """After a breach, free what the run wrote: its folders are emptied (the links the
    daemon made into the package stay: ``workspace.daemon_links``, by name and target;
    every link of the model goes, each one an inode), its output files emptied (not
    removed), its log cut to the last ``KEPT_LOG_BYTES`` so the reason it stopped can
    still be read."""
    files = list(files)
    kept = {os.path.abspath(path) for path in files}
    for folder in folders:
        links = daemon_links(folder)
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in list(entries):
                if os.path.abspath(entry.path) in kept or _made(links, entry):
                    continue
                trees.remove(entry.path)
    for path in files:
        with contextlib.suppress(OSError):
            if log_file is not None and os.path.abspath(path) == os.path.abspath(log_file):
                _keep_tail(path)
            else:
                os.truncate(path, 0)


def _made(links: DaemonLinks | None, entry: os.DirEntry[str]) -> bool:
    """Whether ``entry`` is one of the daemon's ``links``."""
    if links is None or not entry.is_symlink():
        return False
    try:
        return links.made(entry.name, os.readlink(entry.path))
    except OSError:
        return False


def _keep_tail(path: StrPath) -> None:
    with open(path, "r+b") as log_fh:
        size = log_fh.seek(0, os.SEEK_END)
        if size <= KEPT_LOG_BYTES:
            return
        log_fh.seek(size - KEPT_LOG_BYTES)
        tail = log_fh.read()
        log_fh.seek(0)
        log_fh.write(tail)
        log_fh.truncate(len(tail))
