"""stdout that names itself when a write fails, so the failure is one line, not a traceback.

Any command may print, through ``print``, typer, rich or the streamed output of a
run; a full disk or ``> /dev/full`` makes that write fail with an ``OSError`` that
does not say which stream it was. The entry point puts the same stream back over a
file object whose failed writes raise ``StdoutError``, and turns that into
``error: cannot write stdout (...): <reason>``. A closed pipe (``EPIPE``: ``orch ... |
head``) is not an error of the command and stays silent, as click treats it.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Buffer


class StdoutError(OSError):
    """A write to stdout failed for another reason than a reader that went away."""


class _Raw(io.FileIO):
    """File descriptor 1, with its failed writes said to be stdout's."""

    def write(self, data: Buffer, /) -> int:
        try:
            return super().write(data)
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise
            raise StdoutError(exc.errno, exc.strerror) from None


def guard() -> None:
    """Rebuild ``sys.stdout`` with the same buffering and encoding over ``_Raw``."""
    old = sys.stdout
    if old is None or old is not sys.__stdout__ or not isinstance(old, io.TextIOWrapper):
        return  # already replaced (a test runner): leave it alone
    try:
        fd = old.fileno()
    except (OSError, ValueError):
        return
    old.flush()
    raw = _Raw(fd, "w", closefd=False)
    binary = raw if isinstance(old.buffer, io.RawIOBase) else io.BufferedWriter(raw)
    sys.stdout = io.TextIOWrapper(
        binary,
        encoding=old.encoding,
        errors=old.errors,
        newline="\n",
        line_buffering=old.line_buffering,
        write_through=old.write_through,
    )


def finish() -> None:
    """Flush what is still buffered, so that its failure is seen here and not at exit."""
    sys.stdout.flush()


def discard() -> None:
    """Point descriptor 1 at /dev/null: what is still buffered can go nowhere useful, and
    the interpreter's last flush must not fail again (nor print "Exception ignored")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
    finally:
        os.close(devnull)


def where() -> str:
    """``stdout``, with the file it is redirected to when it is one (``> /dev/full``)."""
    try:
        target = os.readlink("/proc/self/fd/1")
    except OSError:
        return "stdout"
    return f"stdout ({target})" if target.startswith("/") else "stdout"
