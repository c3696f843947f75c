"""The disk under the home: how much is free, a reserve for the daemon's own records,
and whether new work may start.

A full disk is a state, not a crash. The monitor knows three:

``ok``
    at least ``low_bytes`` free: everything works.
``low``
    less than ``low_bytes`` free: requests that add data answer 507 and queued runs
    wait, so what is left goes to the runs already running and to orch's records.
``full``
    the disk filled up (writes were failing) and orch gave up its *reserve*, a
    preallocated file in the home, so it can still record how runs ended, cancel
    and delete them. The reserve is made again, and the state goes back to ``ok``,
    once ``low_bytes`` plus the reserve are free again: no restart needed. A daemon
    started on a disk with no room for its reserve starts in this state too.

Beside the reserve, a small *slice* (``DELETE_BYTES`` at most) is kept for deletes
alone: a disk filled again after the reserve went (by a model, or outside orch) left
SQLite no room to delete a row, and deleting runs, the way out, answered 507. A delete
that meets a full disk gives the slice up (``Database``), and it is taken back once
there is room. Bodies being received (uploads) count against the free space until they
are written (``claim``): each checked alone, two uploads that fitted one at a time
filled the disk together.

Free space is ``statvfs``'s ``f_bavail`` (what an unprivileged writer may use; a
model never gets root's reserved blocks), or less where files run out first: a
file system with a fixed number of inodes refuses new files with free blocks left,
so each free inode counts ``ENTRY_BYTES`` and the smaller figure is the free space
(a model that made 100,000 empty files filled the inode table while the monitor saw
gigabytes free). A sample costs ~2 us; the API's gate reuses one for
``GATE_SAMPLE_SECONDS``, and ``tick`` runs every second.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import DiskFull
from orchestrator.models import Failure, FailureKind, RunStatus

if TYPE_CHECKING:
    from orchestrator.config import Settings

log = logging.getLogger("orch.disk")

MIB = 1024 * 1024
FULL_BYTES = 2 * MIB
"""Below this the disk is full: no useful write fits (a model's 1 MiB write failed)."""
GATE_SAMPLE_SECONDS = 0.25
ENTRY_BYTES = 4096
"""What a file, folder or link counts at least, whatever it holds: an empty file allocates
no block but takes an inode. Against a run's ``disk_mb`` (``runs/disk.py``: 100,000 empty
files count 390 MiB, not 0), and per free inode against the free space."""
RESERVE_FILE = "disk-reserve"
DELETE_FILE = "disk-reserve-deletes"
DELETE_BYTES = MIB
"""The slice kept for deletes: a run's delete writes a few pages to SQLite's WAL (tens of
KiB); an app's with thousands of runs may need more, and gets what there is."""
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or the user's quota) has no room left."""
    if isinstance(exc, DiskFull):
        return True
    if isinstance(exc, OSError):
        return exc.errno in _NO_SPACE
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", 0) & 0xFF == _SQLITE_FULL
    return False


def mib(n: int) -> str:
    return f"{n / MIB:.1f} MiB"


@dataclass(frozen=True)
class DiskState:
    state: str
    """``ok``, ``low`` or ``full`` (see the module's docstring)."""
    free_bytes: int
    low_bytes: int
    reserve_bytes: int
    reserve_held: bool

    @property
    def needed_bytes(self) -> int:
        """Free space needed to be ``ok`` again (the reserve is made again first)."""
        return self.low_bytes + (0 if self.reserve_held else self.reserve_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "free_bytes": self.free_bytes,
            "low_threshold_bytes": self.low_bytes,
            "reserve_bytes": self.reserve_bytes,
            "reserve_held": self.reserve_held,
        }


class DiskMonitor:
    def __init__(self, root: Path, low_bytes: int = 0, reserve_bytes: int = 0) -> None:
        self.root = root
        self.low_bytes, self.reserve_bytes = low_bytes, reserve_bytes
        self.reserve_path = root / RESERVE_FILE
        self.slice_path = root / DELETE_FILE
        self.slice_bytes = min(DELETE_BYTES, reserve_bytes // 4)
        self._claims: dict[int, tuple[int, Path]] = {}
        """Bodies being received: the bytes each announced, and the file they go to."""
        self._claim_ids = itertools.count()
        self._state: DiskState | None = None
        self._sampled_at = float("-inf")
        self._full_at = float("-inf")
        """When (monotonic) the disk was last seen full."""
        self._no_room = (0.0, -1.0)
        """The last stretch (wall clock, first and last seen) the disk had no room."""
        self._in_no_room = False
        self._on_space: list[Callable[[], object]] = []
        import asyncio  # here, not at the top: the CLI imports this module (lifecycle)

        self._roomy = asyncio.Event()

    @classmethod
    def of(cls, settings: Settings) -> DiskMonitor:
        """The monitor of a daemon's home, with its configured threshold and reserve."""
        return cls(settings.home.root, settings.disk_low_mb * MIB, settings.disk_reserve_mb * MIB)

    # --- what the disk holds -----------------------------------------------------------
    def free_bytes(self) -> int:
        st = os.statvfs(self.root)
        free = st.f_bavail * st.f_frsize
        if st.f_files:  # 0: no fixed inode table (btrfs, some network file systems)
            free = min(free, st.f_favail * ENTRY_BYTES)
        return free

    def sample(self) -> DiskState:
        """Measure now; on a full disk, give the reserve up so orch can still record."""
        free = self.free_bytes()
        if free < FULL_BYTES:
            self._seen_no_room()
            if self._release_reserve():
                free = self.free_bytes()
        else:
            self._in_no_room = False
        held = self.reserve_held()
        if self.reserve_bytes and not held:
            state = "ok" if free >= self.low_bytes + self.reserve_bytes else "full"
        elif free < FULL_BYTES and not self.reserve_bytes:
            state = "full"
        else:
            state = "ok" if free >= self.low_bytes else "low"
        was = self._state.state if self._state else "ok"
        self._state = DiskState(state, free, self.low_bytes, self.reserve_bytes, held)
        self._sampled_at = time.monotonic()
        if state != was:
            log.warning("disk under %s is %s: %s free", self.root, state, mib(free))
        return self._state

    def current(self) -> DiskState:
        """The last sample if it is recent enough for a gate, else a new one."""
        if self._state is None or time.monotonic() - self._sampled_at > GATE_SAMPLE_SECONDS:
            return self.sample()
        return self._state

    def reserve_held(self) -> bool:
        if not self.reserve_bytes:
            return False
        try:
            return self.reserve_path.stat().st_blocks * 512 >= self.reserve_bytes
        except OSError:
            return False

    # --- the reserve ------------------------------------------------------------------
    def make_reserve(self) -> bool:
        """Preallocate the reserve (a no-op if held); False if there is no room for it.

        A reserve left larger by an earlier ``disk_reserve_mb`` is cut to size, and removed
        when the setting is 0: lowering the setting used to free nothing."""
        if not self.reserve_bytes:
            if self.reserve_path.exists() or self.slice_path.exists():
                self.reserve_path.unlink(missing_ok=True)
                self.slice_path.unlink(missing_ok=True)
                log.info("disk reserve removed (disk_reserve_mb = 0)")
            return True
        if self.reserve_held():
            if self.reserve_path.stat().st_size > self.reserve_bytes:
                os.truncate(self.reserve_path, self.reserve_bytes)
                log.info("disk reserve cut to %s", mib(self.reserve_bytes))
            return True
        if not _preallocate(self.reserve_path, self.reserve_bytes):
            return False
        log.info("disk reserve of %s made at %s", mib(self.reserve_bytes), self.reserve_path)
        return True

    def keep_slice(self) -> bool:
        """Preallocate the slice kept for deletes (a no-op if held); False if there is no
        room for it besides ``FULL_BYTES`` (it never takes a write's last room)."""
        if not self.slice_bytes:
            return True
        if _allocated(self.slice_path) >= self.slice_bytes:
            if self.slice_path.stat().st_size > self.slice_bytes:  # a larger reserve's
                os.truncate(self.slice_path, self.slice_bytes)
            return True
        if self.free_bytes() < self.slice_bytes + FULL_BYTES:
            return False
        return _preallocate(self.slice_path, self.slice_bytes)

    def give_slice_to_delete(self) -> bool:
        """A delete is about to write on a disk with no room: the slice kept for it goes
        (``tick`` takes it back once there is room). False if there was none."""
        if not self.slice_path.exists():
            return False
        self.slice_path.unlink(missing_ok=True)
        log.warning("the disk under %s is full: released %s for a delete", self.root,
                    mib(self.slice_bytes))  # fmt: skip
        return True

    def _release_reserve(self) -> bool:
        if not self.reserve_path.exists():
            return False
        self.reserve_path.unlink(missing_ok=True)
        kept = f" ({mib(self.slice_bytes)} stay kept for deletes)" if self.slice_bytes else ""
        reserve = mib(self.reserve_bytes)
        log.warning(
            "the disk under %s is full: released the %s reserve%s", self.root, reserve, kept
        )
        return True

    def noticed_full(self) -> None:
        """A write of the daemon failed for lack of space: free the reserve now."""
        self._seen_no_room()
        self._release_reserve()
        self.sample()

    def _seen_no_room(self) -> None:
        self._full_at, now = time.monotonic(), time.time()
        self._no_room = (self._no_room[0] if self._in_no_room else now, now)
        self._in_no_room = True

    # --- gates and verdicts -------------------------------------------------------------
    def require_space(self, adding: int = 0) -> None:
        """Raise ``DiskFull`` (507) unless the disk is ``ok`` with ``adding`` bytes more used,
        besides those of the bodies being received."""
        state = self.current()
        room = state.free_bytes - self.in_flight() - adding
        if state.state == "ok" and room >= state.needed_bytes:
            return
        raise self.error(adding)

    def in_flight(self) -> int:
        """Bytes announced by the bodies being received and not written yet."""
        return sum(max(0, n - _size(path)) for n, path in self._claims.values())

    @contextlib.contextmanager
    def claim(self, adding: int, path: Path) -> Iterator[None]:
        """Room for a body of ``adding`` bytes on its way to ``path``: ``DiskFull`` unless it
        fits besides the other bodies arriving; what it has not written yet counts against
        the free space until it ends (the API's gate checks each request alone, before
        it is routed: two uploads passed it together and filled the disk)."""
        self.require_space(adding)
        key = next(self._claim_ids)
        self._claims[key] = (adding, path)
        try:
            yield
        finally:
            del self._claims[key]

    def error(self, adding: int = 0, freeing: bool = False) -> DiskFull:
        """The 507: what is free, and how much must be before orch takes more data. A request
        the disk has room for, but not for it, is told so (it said "full" with 35 MiB
        free); a delete that met a full disk is told to free space outside orch."""
        state = self.current()
        this = f" besides the {mib(adding)} of this request" if adding >= MIB else ""
        if state.state == "ok" and (adding or self.in_flight()):
            return DiskFull(self._does_not_fit(state, adding))
        how = "low (below disk_low_mb)" if state.state == "low" else "full"
        advice = (
            "Free some space outside orch's home: a delete needs a little room too"
            if freeing
            else "Free some space (e.g. delete old runs): orch resumes by itself"
        )
        return DiskFull(
            f"the disk under orch's home is {how}: {mib(state.free_bytes)} free; orch accepts "
            f"new data once {mib(state.needed_bytes)} are free{this}. {advice}"
        )

    def _does_not_fit(self, state: DiskState, adding: int) -> str:
        arriving = self.in_flight()
        others = f", {mib(arriving)} of them promised to uploads being received" if arriving else ""
        kept = "disk_low_mb" + (" and its reserve" if not state.reserve_held else "")
        this = f"the {mib(adding)} of this request" if adding >= MIB else "this request"
        later = "send it again once they are in" if arriving else "send less"
        return (
            f"this request does not fit on the disk under orch's home: {mib(state.free_bytes)} "
            f"free{others}; orch keeps {mib(state.needed_bytes)} free ({kept}) besides "
            f"{this}. Free some space (e.g. delete old runs) or {later}"
        )

    def witness(self, seconds_ago: float) -> DiskWitness:
        """Whether the disk ran out of room during a run that ended just now (sampled now,
        before its clean-up frees anything)."""
        state = self.sample()
        since = time.monotonic() - seconds_ago - 1.0  # the watcher samples once a second
        if self._full_at < since:
            return DiskWitness(full_during=False, free_bytes=state.free_bytes)
        first, last = self._no_room  # it may have filled up to a sample before it was seen
        return DiskWitness(True, state.free_bytes, no_room=(first - 1.0, last))

    @property
    def ok(self) -> bool:
        return self.current().state == "ok"

    # --- the watcher ------------------------------------------------------------------
    def when_space_returns(self, callback: Callable[[], object]) -> None:
        self._on_space.append(callback)

    async def tick(self) -> None:
        """One look (every second, by ``Housekeeping``): once space has returned, make the
        reserve again and tell whoever waits (held log lines, queued runs)."""
        before = self._state.state if self._state else "ok"
        state = self.sample()
        if state.free_bytes >= FULL_BYTES:
            self._roomy.set()
        if self.reserve_bytes and not state.reserve_held and state.free_bytes >= state.needed_bytes:
            import anyio

            await anyio.to_thread.run_sync(self.make_reserve)
            state = self.sample()
        if self.slice_bytes and not self.slice_path.exists():
            self.keep_slice()  # 1 MiB at most: preallocated in microseconds
        if state.state == "ok" and before != "ok":
            for callback in self._on_space:
                try:
                    callback()
                except Exception:
                    log.exception("callback after the disk had space again failed")

    async def wait_for_space(self, every: float = 1.0) -> None:
        """Until a write has room again (``FULL_BYTES`` free): woken by the watcher, and
        sampling on its own every ``every`` s where no watcher runs."""
        while self.sample().free_bytes < FULL_BYTES:
            self._roomy.clear()
            with contextlib.suppress(TimeoutError):
                import asyncio

                await asyncio.wait_for(self._roomy.wait(), every)


@dataclass(frozen=True)
class DiskWitness:
    full_during: bool
    """The disk had no room (a write failed, or under ``FULL_BYTES`` free) during the run."""
    free_bytes: int
    no_room: tuple[float, float] = (0.0, -1.0)
    """When (wall clock, from and to) it last had none."""

    def verdict(
        self,
        status: RunStatus,
        failure: Failure | None,
        log_tail: Callable[[], str] = str,
        outputs: tuple[str, ...] = (),
    ) -> tuple[RunStatus, Failure | None]:
        """A run that failed while the disk was full failed because of it. One that
        "succeeded" is doubted only for what happened to its own writes: its log
        (``log_tail()``) says a write found no space, or its last write (the newest of its
        ``outputs``: stdout, stderr) landed while the disk had none. It used to be doubted
        whenever the disk's state was ``full`` at its end: another run, or a file outside
        orch, that filled the disk failed runs whose output was whole. Limit breaches and
        cancels keep their own reason."""
        if not self.full_during:
            return status, failure
        if status == RunStatus.SUCCEEDED:
            said = no_space_line(log_tail())
            if said is not None:
                why = f"a write of the run failed ({said}); its output may be incomplete"
            elif self._wrote_without_room(outputs):
                why = "its last write landed while the disk had no room"
                why += "; its output may be incomplete"
            else:
                return status, failure
        elif (
            status == RunStatus.FAILED
            and failure is not None
            and failure.kind in (FailureKind.EXIT, FailureKind.SIGNAL)
        ):
            why = failure.message
        else:
            return status, failure
        detail = f"{mib(self.free_bytes)} free when it ended; {why}"
        return RunStatus.FAILED, Failure(FailureKind.DISK_FULL, detail=detail)

    def _wrote_without_room(self, outputs: tuple[str, ...]) -> bool:
        """Whether one of ``outputs`` was last written while the disk had no room (an empty
        one's time is when it was made: nothing of it could be lost)."""
        first, last = self.no_room
        for path in outputs:
            with contextlib.suppress(OSError):
                st = os.stat(path)
                if st.st_size and first <= st.st_mtime <= last:
                    return True
        return False


_NO_SPACE_WORDS = tuple(os.strerror(code) for code in sorted(_NO_SPACE))


def no_space_line(log: str) -> str | None:
    """The last line of a run's log that says a write found no space (``No space left on
    device``, ``Disk quota exceeded``), cut short; None if none does."""
    for line in reversed(log.splitlines()):
        if any(words in line for words in _NO_SPACE_WORDS):
            line = line.strip()
            return line if len(line) <= 160 else line[:157] + "..."
    return None


def _preallocate(path: Path, size: int) -> bool:
    """``size`` bytes really allocated at ``path`` (made aside, then moved in place);
    False if the disk has no room for them."""
    tmp = path.with_suffix(".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in _NO_SPACE:
            return False
        raise
    return True


def _allocated(path: Path) -> int:
    try:
        return path.stat().st_blocks * 512
    except OSError:
        return 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
