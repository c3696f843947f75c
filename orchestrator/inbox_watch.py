"""Watching ``push/``: what changed in it, for as long as the daemon runs.

The watch is recursive (watchfiles, inotify). If ``push/`` is moved away, removed or
replaced, a new one is made and watched; while it cannot be (a file where the folder
should be, no inotify watches left), ``problem`` says why (``/healthz``) and it is tried
again every ``REWATCH_SECONDS``. As it is set up, watchfiles walks into the folders links
lead to: ``prepare`` runs before each setup, to remove them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from watchfiles import Change, awatch

from orchestrator.daemon_log import escaped
from orchestrator.inbox_filing import Ident, ident

log = logging.getLogger("orch.inbox")

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

Changed = Callable[[list[Path], set[Path]], None]
"""Told the entries of ``push/`` and ``push/<app>/`` a batch of changes is about, and the
folders ``push/<app>/<folder>`` changed inside."""


class Watch:
    """The watch of ``push/``: ``prepare`` before each is set up, ``ready`` once it is in
    place (what is there already is taken then: nothing dropped meanwhile is missed),
    ``changed`` for each batch of changes."""

    def __init__(
        self,
        root: Path,
        stop: asyncio.Event,
        prepare: Callable[[], None],
        ready: Callable[[], None],
        changed: Changed,
    ) -> None:
        self.root = root
        self._stop = stop
        self._prepare, self._ready, self._changed = prepare, ready, changed
        self.problem: str | None = None
        """Why packages dropped in ``push/`` are not being taken, while that lasts
        (for ``/healthz``); ``None`` when all is well."""
        self._watches = 0
        """Watches started (one more when one fails), so a late call for one that failed
        to start cannot report it in place."""

    async def run(self) -> None:
        """Watch until the stop event is set, making a new watch whenever one ends."""
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

    async def _watch(self) -> None:
        """Watch ``push/`` until it stops being the folder watched (moved away, removed,
        replaced): then return, and ``run`` makes a new one and watches that."""
        self.root.mkdir(parents=True, exist_ok=True)
        watched = ident(os.stat(self.root))
        self._prepare()
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
                self._changed(*_entries_of(batch, self.root))

    def _still_watched(self, watched: Ident) -> bool:
        try:
            st = os.stat(self.root)
        except OSError:
            return False
        return stat.S_ISDIR(st.st_mode) and ident(st) == watched

    def _watching(self, watch: int) -> None:
        """The watch is in place: say so if it was not, and take what is there (unless
        the watch failed to start meanwhile: ``run`` counted it as gone)."""
        if watch != self._watches:
            return
        if self.problem is not None:
            log.warning("inbox: watching %s again", escaped(self.root))
            self.problem = None
        self._ready()


def _gone(batch: Iterable[tuple[Change, str]], root: Path) -> bool:
    """Whether the watch saw ``root`` itself go (a new one may have its inode number)."""
    return any(change == Change.deleted and raw == str(root) for change, raw in batch)


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
