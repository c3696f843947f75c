"""The daemon's footprint in its home: the lock, ``daemon.json`` and the API key, and
what start-up needs of the home.

One daemon per home is enforced with an ``flock`` held for the daemon's life:
the kernel drops it when the process dies, so a ``daemon.json`` left by a
crashed daemon is recognised as stale and replaced instead of blocking start.
A daemon asked to stop says so (``daemon.stopping``) while it still holds the
lock, so that a start meanwhile waits for it instead of naming it.

A daemon that cannot start says why in one line (``CannotStart``) and leaves
nothing running: ``check_home`` looks at the home before anything is opened
(writable? room to record anything?), and ``why_not_started`` names the
cause of whatever else failed on the way (a read-only file system, a full
disk, a broken database file, a port in use) instead of a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from orchestrator.config import Settings
from orchestrator.daemon_info import DaemonInfo
from orchestrator.disk import FULL_BYTES, DiskMonitor, is_disk_full, mib
from orchestrator.errors import Conflict, OrchError
from orchestrator.home import Home
from orchestrator.ids import new_token


class HomeTaken(Conflict):
    """Another daemon holds the home's lock: ``orch daemon start`` racing a second start
    finds that daemon running (its own child exits ``HOME_TAKEN``), not a failure."""


HOME_TAKEN = 3
"""Exit code of ``orch daemon run`` when another daemon holds the home."""

_start_log = logging.getLogger("orch.start")


class HomeLock:
    """Exclusive ownership of a home directory by one running daemon."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        fh = open(self.home.lock_file, "a+")  # noqa: SIM115 - held for the daemon's life
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            info = DaemonInfo.read(self.home)
            where = f" at {info.url} (pid {info.pid})" if info else ""
            raise HomeTaken(
                f"another orch daemon is already running on {self.home.root}{where}"
            ) from None
        self._fh = fh
        stopping_marker(self.home).unlink(missing_ok=True)  # a killed daemon's, if any

    def publish(self, url: str) -> None:
        """Write ``daemon.json`` atomically once the server is listening."""
        info = DaemonInfo(
            url=url, pid=os.getpid(), started_at=time.time(), home=str(self.home.root)
        )
        tmp = self.home.daemon_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info.__dict__, indent=2) + "\n")
        os.replace(tmp, self.home.daemon_file)

    def mark_stopping(self) -> None:
        """Say the daemon is on its way out (``stopping_marker``): it still answers for a
        while, and ``orch daemon start`` meanwhile claimed it ran, exit 0, then none did."""
        if self._fh is not None:
            mark_stopping(self.home, os.getpid())

    def release(self) -> None:
        info = DaemonInfo.read(self.home)
        if info is not None and info.pid == os.getpid():
            self.home.daemon_file.unlink(missing_ok=True)
        if is_stopping(self.home, os.getpid()):
            stopping_marker(self.home).unlink(missing_ok=True)
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def stopping_marker(home: Home) -> Path:
    """Holds the pid of the home's daemon once it was asked to stop; gone when it ends."""
    return home.root / "daemon.stopping"


def mark_stopping(home: Home, pid: int) -> None:
    """Write ``stopping_marker`` for the daemon of pid ``pid`` (by ``orch daemon stop``
    before it signals, and by the daemon when told to stop by anyone)."""
    with contextlib.suppress(OSError):  # a full disk: a start then waits on the lock anyway
        stopping_marker(home).write_text(f"{pid}\n")


def is_stopping(home: Home, pid: int) -> bool:
    """Whether the daemon of pid ``pid`` was asked to stop (a marker of another pid is an
    earlier daemon's, one killed before it could remove it)."""
    try:
        return stopping_marker(home).read_text().strip() == str(pid)
    except OSError:
        return False


class StartPhases:
    """What a starting daemon is doing, so that a start that takes long says so.

    ``orch daemon start`` stops a daemon that has not answered within its ``--timeout``;
    that start used to leave nothing in daemon.log (its lines are held until it listens:
    ``daemon_log``), so why it was slow went unsaid. A phase that takes
    ``SLOW_SECONDS`` or more is logged when it ends, and ``interrupted`` gives the line a
    stopped start writes: the phase under way, for how long, and the ones done."""

    SLOW_SECONDS = 1.0

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.current: tuple[str, float] | None = None
        self.done: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        since = time.monotonic()
        self.current = (name, since)
        try:
            yield
        finally:
            took = time.monotonic() - since
            self.current = None
            self.done.append((name, took))
            if took >= self.SLOW_SECONDS:
                _start_log.warning("start-up: %s took %.1f s", name, took)

    def interrupted(self, why: str) -> str:
        """One line: ``why`` the start ended, where it was, and how long each step took."""
        now = time.monotonic()
        line = f"start-up {why} after {now - self.began:.1f} s"
        if self.current is not None:
            name, since = self.current
            line += f", while {name} (for {now - since:.1f} s)"
        if self.done:
            line += "; done: " + ", ".join(f"{n} {t:.1f} s" for n, t in self.done)
        return line


KEY_CHARS = len(new_token())
"""The length of the key orch makes (48: ``new_token``'s 24 random bytes, in hex)."""
_BEARER = re.compile(r"[A-Za-z0-9._~+/-]+=*")
"""What a bearer key can be (RFC 6750's ``b64token``): anything else never matches a header."""


def load_or_create_api_key(home: Home) -> str:
    """The bearer key, generated at first start, readable only by the user.

    A key found in the file is used only if it is at least as long as the one orch makes
    and fit for a header: a 7-character key put there by hand was used silently. It is
    refused, not replaced: a client set up with it would be locked out without a word;
    deleting the file gets a new key at the next start."""
    path: Path = home.api_key_file
    if path.exists():
        key = path.read_bytes().decode("utf-8", "replace").strip()
        if key:
            if len(key) < KEY_CHARS or not _BEARER.fullmatch(key):
                raise CannotStart(
                    f"the API key in {path} is not one orch would make ({len(key)} "
                    f"characters; at least {KEY_CHARS} letters, digits or -._~+/ are "
                    "needed): delete the file and start again for a new key"
                )
            os.chmod(path, 0o600)
            return key
    key = new_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


class CannotStart(OrchError):
    """The daemon cannot start; ``message`` is the one line that says why."""


def check_home(settings: Settings) -> DiskMonitor:
    """The home exists, is writable, and its disk has room to record anything (with what
    the reserve file already holds): else ``CannotStart``, before anything is opened. No
    room for the reserve is no reason not to start (``take_reserve``)."""
    home = settings.home
    try:
        home.create()
        probe = home.root / f".write-probe-{os.getpid()}"
        try:
            probe.write_bytes(b"orch")
        finally:
            probe.unlink(missing_ok=True)
    except OSError as exc:
        raise CannotStart(why_not_started(exc, settings)) from None
    if (lost := lost_database(home)) is not None:
        raise CannotStart(lost)
    disk = DiskMonitor.of(settings)
    if _free(disk) + _size(disk.reserve_path) < _needed(disk):
        raise CannotStart(_disk_full_line(disk))
    return disk


def lost_database(home: Home) -> str | None:
    """Why a home whose database is gone (missing, or emptied) must not start, if it is.

    A daemon on a new database treats every run folder and package no row names as the
    leftover of a crash and deletes it: on a home that held runs, that would delete all
    of them. So such a home is refused with what it holds, and nothing is touched.
    """
    try:
        if home.db.stat().st_size > 0:
            return None
    except FileNotFoundError:
        pass
    held = {
        "run folder(s)": _count(home.runs),
        "unpacked package(s)": _count(home.executables),
        "stored package(s)": _count(home.blobs),
    }
    if not any(held.values()):
        return None  # a new home
    what = ", ".join(f"{n} {name}" for name, n in held.items() if n)
    return (
        f"the database {home.db} is missing or empty, but the home holds {what}: orch "
        "does not start on it, which would delete them as leftovers; put the database "
        "back, or move the home aside to start afresh"
    )


def _count(folder: Path) -> int:
    try:
        with os.scandir(folder) as entries:
            return sum(1 for entry in entries if not entry.name.startswith("."))
    except FileNotFoundError:
        return 0


def why_not_started(exc: BaseException, settings: Settings) -> str:
    """One line naming the cause of a failed start-up."""
    root = settings.home.root
    if isinstance(exc, OrchError) and not is_disk_full(exc):
        return exc.message
    disk = DiskMonitor.of(settings)
    if is_disk_full(exc) or (isinstance(exc, sqlite3.OperationalError) and _nearly_full(disk)):
        return _disk_full_line(disk)
    if isinstance(exc, OSError):
        where = exc.filename or root
        if exc.errno == errno.EROFS:
            return f"the home {root} is on a read-only file system: orch needs to write there"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return f"orch cannot write to {where}: permission denied"
        if exc.errno == errno.EADDRINUSE:
            port = f"port {settings.port}" if settings.port else "the port"
            return f"{port} is already in use on {settings.host}: {exc.strerror}"
        return f"{exc.strerror or exc} ({where})"
    if isinstance(exc, sqlite3.DatabaseError):
        return f"the database {settings.home.db} cannot be used: {exc}"
    return f"{type(exc).__name__}: {exc}"


def take_reserve(disk: DiskMonitor) -> str | None:
    """Make the disk reserve, and the slice kept for deletes, where there is room; on a disk
    without room for the reserve, start without it, ``full`` (new data answers 507, deletes
    work). Refusing to start there was a dead end: what fills a home is mostly its own
    runs, which only the daemon deletes, and the reserve a full disk had released was
    asked for again. Returns the one line that says so (logged, and shown by ``orch
    daemon start``), or None."""
    if (disk.reserve_held() or _free(disk) >= _with_reserve(disk)) and disk.make_reserve():
        disk.keep_slice()
        return None
    disk.keep_slice()
    state = disk.sample()
    return (
        f"the disk under {disk.root} is full ({mib(state.free_bytes)} free, no room for the "
        f"{mib(disk.reserve_bytes)} reserve): orch runs, but refuses new data (507) until "
        f"{mib(state.needed_bytes)} are free; reads, cancels and deletes work: delete old "
        "runs to make room"
    )


def _needed(disk: DiskMonitor) -> int:
    """To start at all: room to record anything (the reserve is made if it fits)."""
    return FULL_BYTES


def _with_reserve(disk: DiskMonitor) -> int:
    """To start with the reserve: room for it, and then for recording anything at all."""
    return disk.reserve_bytes + FULL_BYTES


def _disk_full_line(disk: DiskMonitor) -> str:
    return (
        f"the disk under {disk.root} is full ({mib(_free(disk))} free): orch needs at least "
        f"{mib(_needed(disk))} to start; free some space outside orch's home and start it "
        "again (once it runs, deleting runs frees more)"
    )


def _nearly_full(disk: DiskMonitor) -> bool:
    return _free(disk) < _with_reserve(disk) + FULL_BYTES


def _free(disk: DiskMonitor) -> int:
    try:
        return disk.free_bytes()
    except OSError:
        return 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_blocks * 512
    except OSError:
        return 0
