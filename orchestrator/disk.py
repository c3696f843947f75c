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
    once ``low_bytes`` plus the reserve are free again: no restart needed.

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
import logging
import os
import sqlite3
import time
from collections.abc import Callable
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
        self._state: DiskState | None = None
        self._sampled_at = float("-inf")
        self._full_at = float("-inf")
        """When (monotonic) the disk was last seen full."""
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
            self._full_at = time.monotonic()
            if self._release_reserve():
                free = self.free_bytes()
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
            if self.reserve_path.exists():
                self.reserve_path.unlink(missing_ok=True)
                log.info("disk reserve removed (disk_reserve_mb = 0)")
            return True
        if self.reserve_held():
            if self.reserve_path.stat().st_size > self.reserve_bytes:
                os.truncate(self.reserve_path, self.reserve_bytes)
                log.info("disk reserve cut to %s", mib(self.reserve_bytes))
            return True
        tmp = self.reserve_path.with_suffix(".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.reserve_bytes)
            finally:
                os.close(fd)
            os.replace(tmp, self.reserve_path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in _NO_SPACE:
                return False
            raise
        log.info("disk reserve of %s made at %s", mib(self.reserve_bytes), self.reserve_path)
        return True

    def _release_reserve(self) -> bool:
        if not self.reserve_path.exists():
            return False
        self.reserve_path.unlink(missing_ok=True)
        reserve = mib(self.reserve_bytes)
        log.warning("the disk under %s is full: released the %s reserve", self.root, reserve)
        return True

    def noticed_full(self) -> None:
        """A write of the daemon failed for lack of space: free the reserve now."""
        self._full_at = time.monotonic()
        self._release_reserve()
        self.sample()

    # --- gates and verdicts -------------------------------------------------------------
    def require_space(self, adding: int = 0) -> None:
        """Raise ``DiskFull`` (507) unless the disk is ``ok`` with ``adding`` bytes more used."""
        state = self.current()
        if state.state == "ok" and state.free_bytes - adding >= state.needed_bytes:
            return
        raise self.error(adding)

    def error(self, adding: int = 0) -> DiskFull:
        """The 507: what is free, and how much must be before orch takes more data."""
        state = self.current()
        this = f" besides the {mib(adding)} of this request" if adding >= MIB else ""
        how = "low (below disk_low_mb)" if state.state == "low" else "full"
        return DiskFull(
            f"the disk under orch's home is {how}: {mib(state.free_bytes)} free; orch accepts "
            f"new data once {mib(state.needed_bytes)} are free{this}. Free some space (e.g. "
            "delete old runs): orch resumes by itself"
        )

    def witness(self, seconds_ago: float) -> DiskWitness:
        """What the disk went through during a run that ended just now (sampled now, before
        its clean-up frees anything)."""
        state = self.sample()
        since = time.monotonic() - seconds_ago - 1.0  # the watcher samples once a second
        return DiskWitness(
            full_during=self._full_at >= since,
            full_at_end=state.state == "full" or state.free_bytes < FULL_BYTES,
            free_bytes=state.free_bytes,
        )

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
    full_at_end: bool
    free_bytes: int

    def verdict(
        self, status: RunStatus, failure: Failure | None
    ) -> tuple[RunStatus, Failure | None]:
        """A run that failed while the disk was full failed because of it, and one that
        "succeeded" on a full disk may have lost output: both end failed naming the disk.
        Limit breaches and cancels keep their own reason."""
        if status == RunStatus.SUCCEEDED and self.full_at_end:
            why = "its output may be incomplete"
        elif (
            status == RunStatus.FAILED
            and self.full_during
            and failure is not None
            and failure.kind in (FailureKind.EXIT, FailureKind.SIGNAL)
        ):
            why = failure.message
        else:
            return status, failure
        detail = f"{mib(self.free_bytes)} free when it ended; {why}"
        return RunStatus.FAILED, Failure(FailureKind.DISK_FULL, detail=detail)
