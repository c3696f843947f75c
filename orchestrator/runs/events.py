"""Run-finished notifications, so waiting for a result costs no poll interval.

Long-poll requests and ``--wait`` park a future here; the executor (and
cancel/recovery) call ``finished`` right after the final transition is
committed, which wakes every waiter within the same loop iteration.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable


class RunEvents:
    def __init__(self) -> None:
        self._waiters: dict[str, list[asyncio.Future[None]]] = defaultdict(list)
        self._listeners: list[Callable[[str], None]] = []
        self._watchers: list[Callable[[str], None]] = []

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(run_id)`` after every run's final transition (it must not block)."""
        self._listeners.append(listener)

    def on_change(self, watcher: Callable[[str], None]) -> None:
        """Call ``watcher(run_id)`` after every committed change of a run's status: written
        queued, written running, finished (live pages; it must not block)."""
        self._watchers.append(watcher)

    def changed(self, run_id: str) -> None:
        for watcher in self._watchers:
            watcher(run_id)

    def watch(self, run_id: str) -> asyncio.Future[None]:
        """Register interest before checking the run's status, so no finish is missed."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[run_id].append(fut)
        return fut

    def forget(self, run_id: str, fut: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(run_id)
        if waiters and fut in waiters:
            waiters.remove(fut)
            if not waiters:
                del self._waiters[run_id]

    async def wait(self, run_id: str, fut: asyncio.Future[None], seconds: float) -> bool:
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(fut), seconds)
            return fut.done()
        finally:
            self.forget(run_id, fut)

    def finished(self, run_id: str) -> None:
        for fut in self._waiters.pop(run_id, []):
            if not fut.done():
                fut.set_result(None)
        for listener in self._listeners:
            listener(run_id)
        self.changed(run_id)
