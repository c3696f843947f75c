"""The push directory: packages dropped into ``<home>/push/<app-id>/`` are pushed.

Here, the inbox itself: what the watch reports is offered, each drop is taken, checked,
pushed and filed. The concepts it ties together each have a module of their own:

- ``inbox_watch``: watching ``push/`` (a new one if it is moved away or removed);
- ``inbox_kinds``: what an entry is (a package, an app's folder, a temp name, a link...);
- ``inbox_filing``: a drop, held from the moment it is seen (replaced under the same name
  meanwhile, both are pushed, in the order they arrived), and filed in ``.done/`` or
  ``.rejected/`` with a ``.reason``, under a name never reused, so it is never ingested
  twice; what a stopped daemon held is settled at the next start;
- ``inbox_quiet``: whether a drop may still be being written (a half-written package is
  never pushed), and saying so beside one written for long;
- ``inbox_queue``: each app's drops in the order they arrived (one that waits holds the
  app's later drops behind it, so devint ends on the latest);
- ``inbox_unpushed``: the reasons said beside what is not pushed (a file straight in
  ``push/``, a folder without ``app.yaml``, a link that was ``push/<app>`` itself);
- ``inbox_reasons``: a pushed drop's reason following its environment's build.

What ``push/`` holds already is taken once the watch is in place: at start, what arrived
while the daemon was down. A package over ``max_package_mb`` is refused before it is
copied, and one met by a full disk is taken again once there is room. A file that is not
a package is rejected saying so; an entry that is neither a file nor a folder (a
symlink, a FIFO, a device, a socket) is never read: it is filed in ``.rejected/`` at
once (a link itself, not what it leads to, and removed), blocking nothing. A link that
is an app's folder itself is removed, its reason beside where it was naming its target.
Links go before each watch is set up: as it sets up, the watch walks into what they lead
to.

Names are user text: they are logged escaped (``daemon_log.escaped``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import traceback
from collections.abc import Iterable
from pathlib import Path

import anyio

from orchestrator import inbox_quiet as quiet
from orchestrator.daemon_log import escaped
from orchestrator.disk import is_disk_full
from orchestrator.environments import Environments
from orchestrator.errors import OrchError, TooLarge
from orchestrator.home import Home
from orchestrator.ids import new_token
from orchestrator.inbox_filing import (
    HELD,
    ORPHAN_REASON,
    Drop,
    Ident,
    NotWhole,
    copy_out,
    file_away,
    ident,
    looks,
    settle_holds,
    take,
    too_large,
)
from orchestrator.inbox_kinds import (
    PACKAGE_HELP,
    PACKAGE_SUFFIXES,
    kind_of,
    not_a_package,
    unfit,
    unfit_reason,
)
from orchestrator.inbox_queue import DropQueue
from orchestrator.inbox_reasons import EnvironmentReasons
from orchestrator.inbox_unpushed import Unpushed
from orchestrator.inbox_watch import Watch
from orchestrator.packaging.build import FileChanged
from orchestrator.registry.push import PushService

log = logging.getLogger("orch.inbox")

DISK_RETRY_SECONDS = 10.0
DISK_TRIES = 3


class Inbox:
    def __init__(self, home: Home, push: PushService, envs: Environments) -> None:
        self.root = home.push
        self.scratch = home.scratch("inbox")
        self.push = push
        self._reasons = EnvironmentReasons(envs)
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._drops = DropQueue()
        self._unpushed = Unpushed(PACKAGE_SUFFIXES, PACKAGE_HELP)
        self._watch = Watch(self.root, self._stop, self._remove_links, self._scan, self._offer_all)

    async def start(self) -> None:
        """Watch ``push/``; what it holds already is taken once the watch is in place."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.scratch.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._loop(), name="inbox")

    async def stop(self) -> None:
        self._stop.set()
        self._drops.stop()
        self._unpushed.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._reasons.stop()

    @property
    def problem(self) -> str | None:
        """Why packages dropped in ``push/`` are not being taken, while that lasts
        (for ``/healthz``); ``None`` when all is well."""
        return self._watch.problem

    @property
    def limit_mb(self) -> int:
        return self.push.settings.max_package_mb

    async def _loop(self) -> None:
        worker = asyncio.create_task(self._work(), name="inbox-worker")
        try:
            await self._watch.run()
        finally:
            worker.cancel()

    # -- offering what is there -------------------------------------------------------

    def _remove_links(self) -> None:
        """Before a watch is set up: the links in ``push/`` and ``push/<app>/`` go (each
        said as when seen), or the watch would walk into what they lead to as it sets up
        (``/usr``: thousands of inotify watches; files outside ``push/`` read)."""
        for entry in _listing(self.root):
            if entry.name.startswith("."):
                continue
            if entry.is_symlink():
                self._unpushed.offer(entry, "astray", quiet.SETTLE_SECONDS)
            elif _real_dir(entry):
                for inner in _listing(entry):
                    if inner.is_symlink():
                        self._offer(inner)

    def _scan(self) -> None:
        """What ``push/`` holds already: at start, and on a new ``push/``; first what a
        stopped daemon held (``settle_holds``)."""
        try:
            entries = [d for d in self.root.iterdir() if not d.name.startswith(".")]
        except OSError:
            return  # gone again: the watch notices
        app_dirs = [d for d in entries if d.is_dir() and not d.is_symlink()]
        holding = self._drops.holding()
        for app in app_dirs:
            for kept in settle_holds(app, holding):
                log.warning("inbox: %s: %s", escaped(kept), ORPHAN_REASON)
        self._unpushed.tidy([self.root, *app_dirs])
        self._offer_all(entries)

    def _offer_all(self, paths: Iterable[Path], inner: set[Path] | None = None) -> None:
        """Take each entry, in the order they arrived (a rename sets ctime), so that of
        packages dropped together devint ends on the latest. ``inner``: the folders
        changes were seen inside (made in place: they settle before they are pushed)."""
        found = []
        for path in set(paths):
            if path.parent == self.root and _real_dir(path):  # an app folder, new (a package
                self._unpushed.unsay(path)  # a folder now, where a link was removed
                found += [(p, _arrival(p)) for p in _listing(path)]  # moved in right after
                continue  # it was made can land before its watch exists)
            found.append((path, _arrival(path)))
        for path, _ in sorted(found, key=lambda pa: (pa[1], str(pa[0]))):
            self._offer(path, path in (inner or ()))

    def _offer(self, path: Path, inner: bool = False) -> None:
        kind = kind_of(path, self.root)
        if kind in (None, "astray", "bare"):
            self._unpushed.offer(path, kind, quiet.SETTLE_SECONDS)
            return
        try:
            st = os.lstat(path)
        except OSError:
            return
        if ident(st) in self._drops:
            return  # already taken: its drop follows it
        if (what := unfit(st)) is not None:  # refused at once, never queued: blocks nothing
            here = Drop(path, ident(st), None, False, False, looks(st), st.st_ctime_ns)
            self._reject(here, unfit_reason(what, here.app_id))
            return
        drop = take(path, path.parent / HELD)
        if drop is None:
            return
        if drop.ident in self._drops:  # replaced by one already taken meanwhile
            if drop.claim is not None:
                drop.claim.unlink(missing_ok=True)
            return
        if drop.folder:  # made in place (seen so, or without app.yaml): it settles first
            drop.in_place = self._unpushed.taken(path) | inner | drop.in_place
        self._drops.put(drop)

    # -- taking a drop ----------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            drop = await self._drops.next()
            try:
                await self._ingest(drop)
            except Exception as exc:
                log.error("inbox failed on %s: %s", escaped(drop.origin), _trace(exc))
                self._forget(drop)
                if drop.claim is not None:  # still in its app's folder: taken at next start
                    drop.claim.unlink(missing_ok=True)

    async def _ingest(self, drop: Drop) -> None:
        if drop.claim is None and not _names(drop.origin, drop.ident):
            self._forget(drop)  # removed, or replaced by another drop (taken on its own)
            log.warning(
                "inbox: %s was removed or replaced before it was read (it could not be held "
                "by a link): not pushed",
                escaped(drop.origin),
            )
            return
        try:
            st = os.lstat(drop.source)  # not held (read in place): it is still what was taken
        except FileNotFoundError:
            self._forget(drop)  # removed before it could be taken
            return
        except OSError as exc:  # a file orch may not look at
            self._reject(drop, f"it cannot be read: {exc.strerror or exc}")
            return
        if (what := unfit(st)) is not None:  # made a link between its look and its hold
            self._reject(drop, unfit_reason(what, drop.app_id))
            return
        whole = self._checked(drop, st)
        if whole is None:
            return
        target = self.scratch / f"inbox-{new_token()[:16]}.tar.gz"
        try:
            read = await anyio.to_thread.run_sync(copy_out, drop, target, self.limit_mb, whole)
            exe = await self.push.ingest(drop.app_id, target, action="push")
        except NotWhole:  # the first part of a package: it waits to settle
            self._drops.retry_later(drop, quiet.settle_left(st))
            return
        except Exception as exc:
            self._failed(drop, exc)
            return
        finally:
            target.unlink(missing_ok=True)
        drop.disk_tries = 0
        if read is not None and quiet.changed_since(drop, read):
            log.warning(
                "inbox: %s changed after it was read; it is pushed again once it settles",
                escaped(drop.origin),
            )
            self._drops.retry_later(drop, quiet.SETTLE_SECONDS)
            return
        self._done(drop, exe.id)

    def _checked(self, drop: Drop, st: os.stat_result) -> bool | None:
        """``None`` if ``drop`` waits (still being written, or a folder made in place that
        changed less than ``SETTLE_SECONDS`` ago) or is refused as it is; else whether it
        is pushed at once only if it proves a whole archive as it is copied."""
        if drop.folder:
            wait, whole = quiet.folder_wait(drop), False
        else:
            wait, whole = quiet.file_wait(drop, st)
        if wait is not None:
            self._written(drop, wait)
            return None
        self._quiet(drop)
        if drop.folder:
            return False
        if not drop.name.endswith(PACKAGE_SUFFIXES) or not stat.S_ISREG(st.st_mode):
            self._reject(drop, not_a_package(drop.app_id))
        elif st.st_size > self.limit_mb * 1024 * 1024:
            self._reject(drop, too_large(st.st_size, self.limit_mb).message)
        else:
            return whole
        return None

    def _written(self, drop: Drop, wait: float) -> None:
        """``drop`` is still being written: it is taken again in ``wait`` seconds. Written
        for long, a ``.reason`` beside it says so: its app's later drops wait behind it."""
        if quiet.writing_for_long(drop):
            self._unpushed.say(drop.origin, quiet.still_written(drop))
        self._drops.retry_later(drop, wait)

    def _quiet(self, drop: Drop) -> None:
        """``drop`` is no longer being written: what was said while it was goes."""
        if drop.writing_since is not None:
            drop.writing_since = None
            self._unpushed.unsay(drop.origin)

    def _failed(self, drop: Drop, exc: Exception) -> None:
        """A full disk is no fault of the package: it is taken again later, unless it
        filled the disk every time (``DISK_TRIES``: it needs more room than there is). A
        package still being written is retried once it settles; anything else is rejected
        with why, never left where it is without a word."""
        if is_disk_full(exc):
            drop.disk_tries += 1
            if drop.disk_tries < DISK_TRIES:
                log.warning("inbox: %s waits for disk space", escaped(drop.origin))
                self._drops.retry_later(drop, DISK_RETRY_SECONDS)
                return
            why = (
                f"pushing it filled the disk under orch's home {drop.disk_tries} times: it "
                "needs more room than the disk has (a package takes about three times its "
                "size while it is pushed); free space, then move it back into its app's folder"
            )
            self._reject(drop, why)
        elif isinstance(exc, TooLarge):
            self._reject(drop, exc.message)
        elif isinstance(exc, FileChanged) or (
            isinstance(exc, OrchError | OSError) and quiet.recently_changed(drop)
        ):
            self._drops.retry_later(drop, quiet.SETTLE_SECONDS)  # changed while it was read
        elif isinstance(exc, OrchError):
            self._reject(drop, exc.message)
        else:
            log.error("inbox could not push %s: %s", escaped(drop.origin), _trace(exc))
            self._reject(drop, f"orch could not push it: {type(exc).__name__}: {exc}")

    # -- filing -----------------------------------------------------------------------

    def _done(self, drop: Drop, exe_id: str) -> None:
        """File a pushed drop in ``.done/``; its reason follows its environment's build."""
        filed = self._file(drop, ".done", self._reasons.reason(exe_id))
        if filed is not None:
            self._reasons.follow(exe_id, filed, drop.origin)

    def _reject(self, drop: Drop, why: str) -> None:
        if self._file(drop, ".rejected", why) is not None:
            log.warning("inbox rejected %s: %s", escaped(drop.origin), escaped(why))

    def _file(self, drop: Drop, folder: str, reason: str) -> Path | None:
        """File ``drop`` away; where it went, None if it went nowhere (gone or replaced
        meanwhile, or it could not be moved). A failure is said in one line, not a
        traceback, and the package, still in its app's folder, is taken again at the next
        start."""
        self._forget(drop)
        try:
            return file_away(drop, folder, reason)
        except OSError as exc:
            if not drop.origin.parent.is_dir():
                log.info("inbox: %s went with its app's folder", escaped(drop.origin))
            else:
                log.error(
                    "inbox could not file %s away in %s (%s); it is taken again at next start",
                    escaped(drop.origin),
                    folder,
                    escaped(exc),
                )
            if drop.claim is not None:
                drop.claim.unlink(missing_ok=True)
            return None

    def _forget(self, drop: Drop) -> None:
        """``drop`` is done with: what was said while it was written goes, and the drops
        of its app that waited behind it go next."""
        self._quiet(drop)
        self._drops.forget(drop)


def _trace(exc: BaseException) -> str:
    """The traceback on one line: its message may quote a file name (user text)."""
    return escaped("".join(traceback.format_exception(exc)).rstrip("\n"))


def _listing(folder: Path) -> list[Path]:
    """A folder's entries (none if it went meanwhile: the app was deleted)."""
    if folder.name.startswith(".") or not folder.is_dir():
        return []
    with contextlib.suppress(OSError):
        return list(folder.iterdir())
    return []


def _real_dir(path: Path) -> bool:
    """A folder, not a link to one (what a link leads to is never read)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _arrival(path: Path) -> int:
    try:
        return os.lstat(path).st_ctime_ns
    except OSError:
        return 0


def _names(path: Path, what: Ident) -> bool:
    try:
        return ident(os.lstat(path)) == what
    except OSError:
        return False
