"""What the push directory holds but does not push, said beside it.

Two kinds of entry are not pushed, and sat there without a word:

- a file straight in ``push/`` (``push/direct.tgz``): which app is it for? It stays
  where it is, and ``push/direct.tgz.reason`` says to move it into ``push/<app-id>/``;
- a link straight in ``push/`` (``push/<app>`` made a link to a folder elsewhere): it is
  removed, never read nor watched through (watchfiles walks into what a link leads to
  as it sets up: a link to ``/usr`` took thousands of inotify watches), and
  ``push/<app>.reason`` names its target; it goes once ``push/<app>/`` is a folder (or at
  the next start, as any reason whose entry went);
- a folder in ``push/<app>/`` without ``app.yaml``: it is pushed once its ``app.yaml``
  appears (``inbox``); while it has none for a while, ``<folder>.reason`` says it waits
  for one (and, if it holds packages, that they are pushed only straight from
  ``push/<app>/``).

The daemon's log says it too, once. A reason said here goes when its entry does (pushed,
moved, removed); one a stopped daemon left beside an entry that went meanwhile goes at
the next start. Every such reason starts with ``NOT_PUSHED``: a ``.reason`` file of the
user's own is never taken for one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from orchestrator.daemon_log import escaped
from orchestrator.inbox_filing import write_reason
from orchestrator.packaging.build import SKIPPED_DIRS
from orchestrator.packaging.manifest import MANIFEST_FILE

log = logging.getLogger("orch.inbox")

REASON = ".reason"
NOT_PUSHED = "not pushed"
ASTRAY = (
    "not pushed: push/ holds one folder per app; move it into push/<app-id>/, the folder "
    "of the app it is for"
)
LINK_REMOVED = (
    "not pushed: push/{name} was a symbolic link, and the push directory never reads "
    "through one: the link was removed (left there, the watcher of push/ would walk into "
    "what it leads to; nothing there was read); make push/{name}/ a folder of its own, put "
    "packages or the app's folder in it (cp -L copies what a link points to). It led to: "
    "{target}"
)
BARE = "not pushed yet: it waits for an app.yaml (a folder here is pushed once it holds one)"
NESTED = (
    "; a package is pushed only straight from its app's folder, not from a folder in it: "
    "move {names} into push/{app}/"
)
SHOWN = 3
"""Packages a folder's reason names (``and N more`` after them)."""
LOOKED_AT = 10_000
"""Entries of a folder looked at for packages, or for its newest change: a huge folder
is not walked whole each time it is seen."""


def newest_change(folder: Path) -> int:
    """The newest ``st_ctime_ns`` in ``folder`` (itself included): a file written or
    added there, even with an old mtime kept (``cp -p``), is that recent."""
    newest = 0
    for path in [folder, *_walk(folder)]:
        with contextlib.suppress(OSError):
            newest = max(newest, os.lstat(path).st_ctime_ns)
    return newest


def said_beside(path: Path) -> bool:
    """Whether ``path`` is the reason said beside an entry (``x.reason`` beside ``x``, or
    one orch said where ``x`` was: a link removed): not an entry of its own."""
    name = path.name
    if not name.endswith(REASON):
        return False
    return os.path.lexists(path.with_name(name[: -len(REASON)])) or _said_by_orch(path)


class Unpushed:
    """The entries of ``push/`` that are not pushed, and the reasons said beside them."""

    def __init__(self, suffixes: tuple[str, ...], package_help: str) -> None:
        self._suffixes, self._help = suffixes, package_help
        self._said: dict[Path, str] = {}
        self._bare: dict[Path, bool] = {}
        """Folders in ``push/<app>/`` seen without ``app.yaml`` → whether their reason was
        said. Made in place, each settles before it is pushed (``taken``)."""
        self._unlinked: set[Path] = set()
        """Links removed: their reasons stay where they were, until a folder is there."""
        self._timers: set[asyncio.TimerHandle] = set()

    def offer(self, path: Path, kind: str | None, settle: float) -> None:
        """An entry the inbox does not take (``inbox_kinds.kind_of``): a file straight in
        ``push/`` is said at once; a folder without ``app.yaml`` once it has had none
        for ``settle`` seconds (it is being copied, or its ``app.yaml`` comes later); the
        reason of one that went goes with it."""
        if kind == "astray" and os.path.islink(path):
            self._remove_link(path)
        elif kind == "astray":
            named = path.name.endswith(self._suffixes)
            self.say(path, ASTRAY if named else f"{ASTRAY} ({self._help})")
        elif kind == "bare" and self._bare.get(path):
            self.say(path, self._bare_reason(path))  # again: it may hold packages now
        elif kind == "bare" and path not in self._bare:
            self._bare[path] = False

            def waited() -> None:
                self._timers.discard(timer)
                self._waited(path)

            timer = asyncio.get_running_loop().call_later(settle, waited)
            self._timers.add(timer)
        elif not os.path.lexists(path) and path not in self._unlinked:
            self._bare.pop(path, None)
            self.unsay(path)

    def _remove_link(self, path: Path) -> None:
        """A link straight in ``push/`` goes, and its reason names what it led to (its
        path, never what is there)."""
        try:
            target = os.readlink(path)
            os.unlink(path)
        except OSError:
            return  # gone meanwhile: nothing to say
        self._unlinked.add(path)
        self._said.pop(path, None)  # a link again: said again
        self.say(path, LINK_REMOVED.format(name=path.name, target=target))

    def taken(self, path: Path) -> bool:
        """The folder at ``path`` holds ``app.yaml`` and is taken: its reason goes. Whether
        it was seen without one (made in place: it settles before it is pushed)."""
        self.unsay(path)
        return self._bare.pop(path, None) is not None

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()

    def _waited(self, path: Path) -> None:
        if path in self._bare and path.is_dir() and not (path / MANIFEST_FILE).is_file():
            self._bare[path] = True
            self.say(path, self._bare_reason(path))

    def _bare_reason(self, folder: Path) -> str:
        """Why the folder ``push/<app>/<folder>`` (no ``app.yaml``) is not pushed yet."""
        found = [p for p in _walk(folder) if p.name.endswith(self._suffixes) and p.is_file()]
        if not found:
            return BARE
        names = ", ".join(repr(str(p.relative_to(folder.parent))) for p in found[:SHOWN])
        if len(found) > SHOWN:
            names += f" and {len(found) - SHOWN} more"
        return BARE + NESTED.format(names=names, app=folder.parent.name)

    def say(self, path: Path, why: str) -> None:
        """``<path>.reason`` says ``why`` (and the log, unless it said it already)."""
        if self._said.get(path) == why:
            return
        try:
            write_reason(path, why)
        except OSError as exc:  # the folder went, or orch may not write there
            log.error("inbox: the reason of %s could not be written: %s", escaped(path), exc)
            return
        self._said[path] = why
        log.warning("inbox: %s is %s", escaped(path), escaped(why))

    def unsay(self, path: Path) -> None:
        """The entry at ``path`` is pushed, or went: its reason goes too (one a stopped
        daemon said, too)."""
        self._said.pop(path, None)
        self._unlinked.discard(path)
        _remove_said(Path(f"{path}{REASON}"))

    def tidy(self, folders: Iterable[Path]) -> None:
        """At start: the reasons left beside entries that went while the daemon was down
        (not those said since: a link removed is said where it was)."""
        for folder in folders:
            with contextlib.suppress(OSError):
                for reason in folder.glob(f"*{REASON}"):
                    entry = reason.with_name(reason.name[: -len(REASON)])
                    if entry not in self._said and not os.path.lexists(entry):
                        _remove_said(reason)


def _remove_said(reason: Path) -> None:
    """Remove ``reason`` if orch said it (never a file of the user's own)."""
    if _said_by_orch(reason):
        with contextlib.suppress(OSError):
            reason.unlink()


def _said_by_orch(reason: Path) -> bool:
    """Whether the file ``reason`` is one orch wrote (it starts with ``NOT_PUSHED``). Read
    without following a link, nor waiting on a FIFO (``x.reason`` is a name anyone can
    give)."""
    try:
        fd = os.open(reason, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return os.read(fd, len(NOT_PUSHED)) == NOT_PUSHED.encode()
    except OSError:
        return False
    finally:
        os.close(fd)


def _walk(folder: Path) -> Iterable[Path]:
    """What ``folder`` holds (no further than ``LOOKED_AT`` entries; not what packaging
    skips, nor through links)."""
    seen = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
        for name in [*dirs, *files]:
            seen += 1
            if seen > LOOKED_AT:
                return
            yield Path(root, name)
