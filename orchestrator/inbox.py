"""The push directory: packages dropped into ``<home>/push/<app-id>/`` are pushed.

A file is taken once it is under its final name: temp names (``*.tmp``,
``*.part``, dot files) are ignored. It is held from the moment it is seen
(``inbox_filing``): replaced under the same name meanwhile, both are pushed, in
the order they arrived. A package still being written under its final name (a writer
holding it open, or its last change a write less than ``SETTLE_SECONDS`` ago and the
archive not yet whole) waits until it settles (and the later drops of its app wait
behind it, so devint ends on the latest), and one that changed while or after it was
read is read again: a half-written package is never pushed. A package over ``max_package_mb`` is
refused before it is copied, and one met by a full disk is taken again once there
is room. A folder containing ``app.yaml`` moved in atomically is packaged and
pushed the same way; one made in place (its last change an entry made in it, changes
seen inside it, or first seen without ``app.yaml``) is pushed once it holds
``app.yaml`` and nothing in it changed for ``SETTLE_SECONDS``. A folder without
``app.yaml``, and a file straight in ``push/`` (which app is it for?), are not pushed,
and a ``.reason`` beside them says why (``inbox_unpushed``). Each dropped entry ends up
in ``.done/`` or ``.rejected/`` (with a ``.reason`` file, under a name never reused), so
it is never ingested twice;
a file that is not a package is rejected saying so; an entry that is neither a file nor
a folder (a symlink, a FIFO, a device, a socket) is never read: it is filed in
``.rejected/`` at once (a link itself, not what it leads to), blocking nothing; a scan
at start picks up what arrived while the daemon was down, and files in ``.rejected/``
(saying why) a package a stopped daemon held when another had taken its name
(``inbox_filing.settle_holds``).
A python app with requirements is filed once pushed; its reason then follows its
environment's build (``inbox_reasons``). If ``push/`` is moved away or removed, a new
one is made and watched.

Names are user text: they are logged escaped (``daemon_log.escaped``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import stat
import time
import traceback
from collections.abc import Iterable
from pathlib import Path

import anyio
from watchfiles import Change, awatch

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
    open_for_writing,
    settle_holds,
    take,
    too_large,
)
from orchestrator.inbox_reasons import EnvironmentReasons
from orchestrator.inbox_unpushed import Unpushed, newest_change, said_beside
from orchestrator.packaging.build import FileChanged
from orchestrator.packaging.manifest import MANIFEST_FILE
from orchestrator.registry.push import PushService

log = logging.getLogger("orch.inbox")

PACKAGE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp", "~")
SETTLE_SECONDS = 2.0
"""A package last written (not renamed) under its final name less than this ago may
still be being written: it waits."""
WRITER_PATIENCE_SECONDS = 60.0
"""A package held open for writing waits for its writer, unless it has not changed for
this long (a writer that never closes it must not hold it back for ever)."""
DISK_RETRY_SECONDS = 10.0
DISK_TRIES = 3
WATCH_STEP_MS = 50
"""How often the watcher thread wakes to look for changes and for the stop event. Each
wake takes the GIL from the event loop: at 5 ms that was 200 wakes a second on an idle
daemon, ~0.3-0.7 ms of CPU per run in the throughput benchmark (plus the loop's hand-offs);
a dropped package waits at most this much longer, next to the 400 ms debounce."""
ROOT_CHECK_MS = 5000
"""With no change to report, the watch still hands back this often, to check that
``push/`` is still the folder watched (one ``stat``). Moving or removing it is seen at
once (the watch reports it); this is for what it does not report. 5 s is watchfiles'
own default wake, so an idle daemon wakes no more often than before."""
REWATCH_SECONDS = 5.0
"""After a watch failed to start (``push/`` cannot be made, no inotify watches left)."""
PACKAGE_HELP = (
    "only packages (.tar.gz, .tgz, .tar) and folders containing app.yaml are pushed from here"
)


def kind_of(path: Path, push_root: Path) -> str | None:
    """``package``, ``folder`` (with ``app.yaml``), ``bare`` (a folder without it: it
    waits for one), ``other`` (a file that is neither: rejected, saying so) for
    ``push/<app>/<entry>`` under a final name; ``astray`` for a file straight in
    ``push/`` (not pushed: which app?); else ``None`` (temporary and dot names, the
    reasons said beside entries, app folders, anything deeper)."""
    try:
        rel = path.relative_to(push_root)
    except ValueError:
        return None
    if len(rel.parts) not in (1, 2) or any(p.startswith(".") for p in rel.parts):
        return None
    if rel.parts[-1].endswith(TEMP_SUFFIXES) or said_beside(path):
        return None
    try:
        st = os.lstat(path)  # never followed: a link is what it is
    except OSError:
        return None  # gone
    if len(rel.parts) == 1:
        return None if stat.S_ISDIR(st.st_mode) else "astray"
    if os.path.islink(path.parent):
        return None  # an app folder that is a link is not read through: said astray
    if stat.S_ISDIR(st.st_mode):
        return "folder" if (path / MANIFEST_FILE).is_file() else "bare"
    if not stat.S_ISREG(st.st_mode):
        return "unfit"
    return "package" if rel.parts[1].endswith(PACKAGE_SUFFIXES) else "other"


def unfit(st: os.stat_result) -> str | None:
    """What an entry that is neither a regular file nor a folder is (``lstat``), else
    ``None``. Such an entry is never read: a link may lead to the daemon's key, or to
    ``/proc/kcore``, which never settles and held its app's other packages back."""
    mode = st.st_mode
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"


def unfit_reason(what: str, app_id: str) -> str:
    """Why an ``unfit`` entry was refused, and what to do instead."""
    moved = (
        "the link was removed: kept, the watcher of push/ would walk into what it leads to"
        if what == "a symbolic link"
        else "it was moved here"
    )
    return (
        f"it is {what}: the push directory never reads through a link, a pipe, a device or "
        f"a socket ({moved}; nothing was read from what it leads to); put the package itself, "
        f"or the app's folder, in push/{app_id}/ (cp -L copies what a link points to)"
    )


class Inbox:
    def __init__(self, home: Home, push: PushService, envs: Environments) -> None:
        self.root = home.push
        self.scratch = home.scratch("inbox")
        self.push = push
        self._reasons = EnvironmentReasons(envs)
        self.problem: str | None = None
        """Why packages dropped in ``push/`` are not being taken, while that lasts
        (for ``/healthz``); ``None`` when all is well."""
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._queue: asyncio.Queue[Drop] = asyncio.Queue()
        self._drops: dict[Ident, Drop] = {}
        """Every drop taken and not yet filed, by what its name stood for when taken:
        the watcher's further events about it (its own link, a writer) add nothing."""
        self._timers: set[asyncio.TimerHandle] = set()
        self._watches = 0
        """Watches started (one more when one fails), so a late call for one that failed
        to start cannot report it in place."""
        self._blocked: dict[Path, Drop] = {}
        """App folder → its drop that waits (being written, no disk space): the app's
        later drops wait behind it (``_held``), so devint ends on the latest drop."""
        self._held: dict[Path, list[Drop]] = {}
        self._next: collections.deque[Drop] = collections.deque()
        """Drops let go by the one they waited behind: taken before the queue."""
        self._unpushed = Unpushed(PACKAGE_SUFFIXES, PACKAGE_HELP)

    async def start(self) -> None:
        """Watch ``push/``; what it holds already is taken once the watch is in place."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.scratch.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._loop(), name="inbox")

    async def stop(self) -> None:
        self._stop.set()
        for timer in self._timers:
            timer.cancel()
        self._unpushed.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._reasons.stop()

    @property
    def limit_mb(self) -> int:
        return self.push.settings.max_package_mb

    # -- watching ---------------------------------------------------------------------

    async def _loop(self) -> None:
        worker = asyncio.create_task(self._work(), name="inbox-worker")
        try:
            while not self._stop.is_set():
                try:
                    await self._watch()
                except Exception as exc:
                    self._watches += 1  # the one that failed is not in place
                    problem = f"the push directory cannot be watched: {exc}"
                    if problem != self.problem:  # one line, not one every few seconds
                        log.error("inbox: %s; trying again", escaped(problem))
                    self.problem = problem
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), REWATCH_SECONDS)
        finally:
            worker.cancel()

    async def _watch(self) -> None:
        """Watch ``push/`` until it stops being the folder watched (moved away, removed,
        replaced): then return, and the loop makes a new one and watches that."""
        self.root.mkdir(parents=True, exist_ok=True)
        watched = ident(os.stat(self.root))
        changes = awatch(
            self.root,
            stop_event=self._stop,
            step=WATCH_STEP_MS,
            debounce=400,
            recursive=True,
            rust_timeout=ROOT_CHECK_MS,
            yield_on_timeout=True,
        )
        async with contextlib.aclosing(changes):
            # runs once the watcher is in place (the generator's first step makes it):
            # nothing dropped between the scan and the watch can be missed
            self._watches += 1
            asyncio.get_running_loop().call_soon(self._watching, self._watches)
            async for batch in changes:
                if not self._still_watched(watched) or _gone(batch, self.root):
                    log.warning(
                        "inbox: %s was moved away or removed; watching a new one there",
                        escaped(self.root),
                    )
                    return
                self._offer_all(*_entries_of(batch, self.root))

    def _still_watched(self, watched: Ident) -> bool:
        try:
            st = os.stat(self.root)
        except OSError:
            return False
        return stat.S_ISDIR(st.st_mode) and ident(st) == watched

    def _watching(self, watch: int) -> None:
        """The watch is in place: say so if it was not, and take what is there (unless
        the watch failed to start meanwhile: ``_loop`` counted it as gone)."""
        if watch != self._watches:
            return
        if self.problem is not None:
            log.warning("inbox: watching %s again", escaped(self.root))
            self.problem = None
        self._scan()

    def _scan(self) -> None:
        """What ``push/`` holds already: at start, and on a new ``push/``; first what a
        stopped daemon held (``settle_holds``)."""
        try:
            entries = [d for d in self.root.iterdir() if not d.name.startswith(".")]
        except OSError:
            return  # gone again: the watch notices
        app_dirs = [d for d in entries if d.is_dir() and not d.is_symlink()]
        holding = {d.claim for d in self._drops.values() if d.claim is not None}
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
                found += [(p, _arrival(p)) for p in _listing(path)]  # moved in right after
                continue  # it was made can land before its watch exists)
            found.append((path, _arrival(path)))
        for path, _ in sorted(found, key=lambda pa: (pa[1], str(pa[0]))):
            self._offer(path, path in (inner or ()))

    def _offer(self, path: Path, inner: bool = False) -> None:
        kind = kind_of(path, self.root)
        if kind in (None, "astray", "bare"):
            self._unpushed.offer(path, kind, SETTLE_SECONDS)
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
        self._drops[drop.ident] = drop
        self._queue.put_nowait(drop)

    # -- pushing ----------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            drop = self._next.popleft() if self._next else await self._queue.get()
            app = drop.origin.parent
            if self._blocked.get(app, drop) is not drop:
                self._held.setdefault(app, []).append(drop)
                continue
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
            self._retry_later(drop, _settle_left(st))
            return
        except Exception as exc:
            self._failed(drop, exc)
            return
        finally:
            target.unlink(missing_ok=True)
        drop.disk_tries = 0
        if read is not None and self._changed_since(drop, read):
            log.warning(
                "inbox: %s changed after it was read; it is pushed again once it settles",
                escaped(drop.origin),
            )
            self._retry_later(drop, SETTLE_SECONDS)
            return
        self._done(drop, exe.id)

    def _checked(self, drop: Drop, st: os.stat_result) -> bool | None:
        """``None`` if ``drop`` waits (still being written, or a folder made in place that
        changed less than ``SETTLE_SECONDS`` ago) or is refused as it is; else whether it
        is pushed at once only if it proves a whole archive as it is copied."""
        if drop.folder:
            age = time.time() - newest_change(drop.source) / 1e9 if drop.in_place else 1e9
            if age < SETTLE_SECONDS:
                self._retry_later(drop, max(SETTLE_SECONDS - age, 0.05))
                return None
            return False
        wait, whole = self._still_written(drop, st)
        if wait is not None:
            self._retry_later(drop, wait)
        elif not drop.name.endswith(PACKAGE_SUFFIXES) or not stat.S_ISREG(st.st_mode):
            self._reject(drop, f"it is not a package: {PACKAGE_HELP}{_where_folders_go(drop)}")
        elif st.st_size > self.limit_mb * 1024 * 1024:
            self._reject(drop, too_large(st.st_size, self.limit_mb).message)
        else:
            return whole
        return None

    def _still_written(self, drop: Drop, st: os.stat_result) -> tuple[float | None, bool]:
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
                return _settle_left(st), False
            return None, True
        return (SETTLE_SECONDS if writer else None), False

    def _changed_since(self, drop: Drop, read: tuple[int, int]) -> bool:
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

    def _failed(self, drop: Drop, exc: Exception) -> None:
        """A full disk is no fault of the package: it is taken again later, unless it
        filled the disk every time (``DISK_TRIES``: it needs more room than there is). A
        package still being written is retried once it settles; anything else is rejected
        with why, never left where it is without a word."""
        if is_disk_full(exc):
            drop.disk_tries += 1
            if drop.disk_tries < DISK_TRIES:
                log.warning("inbox: %s waits for disk space", escaped(drop.origin))
                self._retry_later(drop, DISK_RETRY_SECONDS)
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
            isinstance(exc, OrchError | OSError) and _recently_changed(drop.source)
        ):
            self._retry_later(drop, SETTLE_SECONDS)  # changed while it was read
        elif isinstance(exc, OrchError):
            self._reject(drop, exc.message)
        else:
            log.error("inbox could not push %s: %s", escaped(drop.origin), _trace(exc))
            self._reject(drop, f"orch could not push it: {type(exc).__name__}: {exc}")

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
        """``drop`` is done with: the drops of its app that waited behind it go next."""
        if self._drops.get(drop.ident) is drop:
            del self._drops[drop.ident]
        app = drop.origin.parent
        if self._blocked.get(app) is drop:
            del self._blocked[app]
            self._next.extend(self._held.pop(app, []))

    def _retry_later(self, drop: Drop, delay: float) -> None:
        """Take ``drop`` again in ``delay`` seconds; its app's later drops wait for it."""
        self._blocked.setdefault(drop.origin.parent, drop)
        loop = asyncio.get_running_loop()

        def again() -> None:
            self._timers.discard(timer)
            self._queue.put_nowait(drop)

        timer = loop.call_later(delay, again)
        self._timers.add(timer)


def _trace(exc: BaseException) -> str:
    """The traceback on one line: its message may quote a file name (user text)."""
    return escaped("".join(traceback.format_exception(exc)).rstrip("\n"))


def _gone(batch: Iterable[tuple[Change, str]], root: Path) -> bool:
    """Whether the watch saw ``root`` itself go (a new one may have its inode number)."""
    return any(change == Change.deleted and raw == str(root) for change, raw in batch)


def _where_folders_go(drop: Drop) -> str:
    """Files of an app's own folder dropped as ``push/<app>/`` itself (``cp -r myapp/.
    push/<app>/``) arrive one by one, each no package: say where the folder goes."""
    return (
        f"; an app's folder is put whole inside push/{drop.app_id}/"
        f" (push/{drop.app_id}/<folder>/app.yaml)"
    )


def _entries_of(batch: Iterable[tuple[Change, str]], root: Path) -> tuple[list[Path], set[Path]]:
    """The entries of ``push/`` and ``push/<app>/`` a batch is about (a change deeper is
    one of the folder ``push/<app>/<folder>`` it is in), and the folders changed inside."""
    entries, inner = [], set()
    for _change, raw in batch:
        path = Path(raw)
        with contextlib.suppress(ValueError):
            parts = path.relative_to(root).parts
            if len(parts) > 2:
                path = root.joinpath(*parts[:2])
                inner.add(path)
            if parts:
                entries.append(path)
    return entries, inner


def _listing(folder: Path) -> list[Path]:
    """An app folder's entries (none if it went meanwhile: the app was deleted)."""
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


def _settle_left(st: os.stat_result) -> float:
    """What is left of the settle time of a file last written at ``st``'s mtime."""
    return max(SETTLE_SECONDS - (time.time() - st.st_mtime_ns / 1e9), 0.05)


def _recently_changed(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime < SETTLE_SECONDS
    except OSError:
        return False
