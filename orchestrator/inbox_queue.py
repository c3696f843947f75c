"""The drops taken and not yet filed, in the order each app's are pushed.

An app's drops are pushed in the order they arrived, so that devint ends on the latest.
A drop that waits (still being written, no disk space) blocks its app: the app's later
drops are held behind it and go, in order, once it is done with. Other apps' drops go
meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

from orchestrator.inbox_filing import Drop, Ident


class DropQueue:
    """Every drop taken and not yet filed, by what its name stood for when taken: the
    watcher's further events about it (its own link, a writer) add nothing."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Drop] = asyncio.Queue()
        self._drops: dict[Ident, Drop] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._blocked: dict[Path, Drop] = {}
        """App folder → its drop that waits: the app's later drops wait behind it
        (``_held``), so devint ends on the latest drop."""
        self._held: dict[Path, list[Drop]] = {}
        self._next: collections.deque[Drop] = collections.deque()
        """Drops let go by the one they waited behind: taken before the queue."""

    def __contains__(self, what: Ident) -> bool:
        return what in self._drops

    def holding(self) -> set[Path]:
        """The holds (``inbox_filing.HELD``) of the drops taken: this daemon's own."""
        return {d.claim for d in self._drops.values() if d.claim is not None}

    def put(self, drop: Drop) -> None:
        self._drops[drop.ident] = drop
        self._queue.put_nowait(drop)

    async def next(self) -> Drop:
        """The next drop that may go now (its app not blocked by another)."""
        while True:
            drop = self._next.popleft() if self._next else await self._queue.get()
            app = drop.origin.parent
            if self._blocked.get(app, drop) is drop:
                return drop
            self._held.setdefault(app, []).append(drop)

    def retry_later(self, drop: Drop, delay: float) -> None:
        """Take ``drop`` again in ``delay`` seconds; its app's later drops wait for it."""
        self._blocked.setdefault(drop.origin.parent, drop)
        loop = asyncio.get_running_loop()

        def again() -> None:
            self._timers.discard(timer)
            self._queue.put_nowait(drop)

        timer = loop.call_later(delay, again)
        self._timers.add(timer)

    def forget(self, drop: Drop) -> None:
        """``drop`` is done with: the drops of its app that waited behind it go next."""
        if self._drops.get(drop.ident) is drop:
            del self._drops[drop.ident]
        app = drop.origin.parent
        if self._blocked.get(app) is drop:
            del self._blocked[app]
            self._next.extend(self._held.pop(app, []))

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
