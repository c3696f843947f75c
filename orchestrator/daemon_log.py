"""The daemon's own log: lines that cannot be written while the disk is full are held.

``orch daemon start`` sends the daemon's stderr to ``<home>/daemon.log``, on the
very disk that may fill up, so "also write it to stderr" saves nothing there.
Instead each line is written straight to the file descriptor; a line the
disk refuses (ENOSPC) is kept in memory, in order, and written ahead of the
next one once writing works again, or as soon as the disk monitor sees space
return. Memory is bounded (``MAX_HELD_BYTES``): past it the oldest lines go and
a note says how many. Lines are only lost if the daemon dies while the disk is
still full; a line that does get out is never written twice.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import os
import sys
import time

MAX_HELD_BYTES = 4 * 1024 * 1024
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
FORMAT = "%(asctime)s %(name)s %(message)s"


class HoldingHandler(logging.Handler):
    def __init__(self, fd: int = 2, max_held: int = MAX_HELD_BYTES) -> None:
        super().__init__()
        self.fd, self.max_held = fd, max_held
        self._held: collections.deque[bytes] = collections.deque()
        self._held_bytes = 0
        self._dropped = 0
        self._quiet = False

    def quiet(self) -> None:
        """Hold every line (start-up: a start that fails says one line, nothing else)."""
        self._quiet = True

    def speak(self) -> None:
        """Write what was held, and every line from now on (the daemon listens)."""
        self._quiet = False
        self.flush()

    def drop(self) -> None:
        """Forget the held lines (a failed start-up: its one line says it all)."""
        self.acquire()
        try:
            self._held.clear()
            self._held_bytes = self._dropped = 0
        finally:
            self.release()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode("utf-8", errors="replace")
        except Exception:
            self.handleError(record)
            return
        self._hold(line)
        if not self._quiet:
            self._write_held()

    def flush(self) -> None:
        """Write what is held (the disk monitor calls this when space returns)."""
        if self._quiet:
            return
        self.acquire()
        try:
            self._write_held()
        finally:
            self.release()

    @property
    def held(self) -> int:
        return len(self._held)

    def _hold(self, line: bytes) -> None:
        self._held.append(line)
        self._held_bytes += len(line)
        while self._held_bytes > self.max_held and len(self._held) > 1:
            self._held_bytes -= len(self._held.popleft())
            self._dropped += 1

    def _write_held(self) -> None:
        if self._dropped:
            note = f"orch: {self._dropped} log line(s) dropped while the disk was full\n"
            if not self._write(note.encode()):
                return
            self._dropped = 0
        while self._held:
            line = self._held[0]
            if not self._write(line):
                return
            self._held.popleft()
            self._held_bytes -= len(line)

    def _write(self, data: bytes) -> bool:
        """Write ``data`` whole; False if the disk is full (what was written is cut off the
        held line, so nothing is written twice)."""
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno not in _NO_SPACE:
                    raise
                if len(view) < len(data) and self._held and self._held[0] is data:
                    rest = bytes(view)
                    self._held_bytes -= len(data) - len(rest)
                    self._held[0] = rest
                return False
        return True


def install(level: int = logging.WARNING) -> HoldingHandler:
    """The root logger writes through one holding handler to stderr (uvicorn's loggers
    propagate to it: the daemon passes ``log_config=None``)."""
    sys.stderr.flush()
    handler = HoldingHandler(sys.stderr.fileno())
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


class Repeated:
    """A warning a client can make the daemon give at will (a refused request head, sent
    in a loop): the first is written, then at most one line per ``every`` seconds, saying
    how many more there were, so a flood costs daemon.log a line a minute and no count is
    lost. The line of a window is written when it ends (a timer on the running loop), or,
    with no loop, before the next one."""

    def __init__(self, log: logging.Logger, line: str, every: float = 60.0) -> None:
        self._log, self._line, self._every = log, line, every
        self._quiet_until = float("-inf")
        self._more = 0
        self._timer: asyncio.TimerHandle | None = None

    def note(self) -> None:
        now = time.monotonic()
        if now >= self._quiet_until:
            self._sum_up()  # a window whose timer did not run (no loop, or a late one)
        if now >= self._quiet_until:
            self._log.warning("%s", self._line)
            self._quiet_until = now + self._every
            return
        self._more += 1
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._timer = loop.call_later(self._quiet_until - now, self._sum_up)

    def _sum_up(self) -> None:
        """The line for the window that ended, if it had repeats; they open the next."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._more:
            self._log.warning("%s (%d more in the last %g s)", self._line, self._more, self._every)
            self._more = 0
            self._quiet_until = time.monotonic() + self._every


def escaped(text: object) -> str:
    """``text`` with each character that is not printable written as its escape (``\\n``,
    ``\\x1b``, ``\\u2028``): a name a user chose (a file dropped in the push directory)
    cannot start a line that reads as the daemon's own, nor send an escape sequence to
    the terminal that shows the log. Printable text, spaces and quotes stay as they are."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)
