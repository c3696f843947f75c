"""Run-state notifications: every transition, as soon as it is committed.

The run-state service (``states``) calls ``changed`` right after a status
change is written. Long-poll requests and ``--wait`` park a future here and
wake when the run finishes, within the same loop iteration; listeners (the
experiments, the console's live pages) hear about every change.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable

from orchestrator.models import RunStatus

Listener = Callable[[str, RunStatus], None]


class RunEvents:
    def __init__(self) -> None:
        self._waiters: dict[str, list[asyncio.Future[None]]] = defaultdict(list)
        self._listeners: list[Listener] = []
        self._released = False

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(run_id, status)`` after every transition (it must not block);
        returns the function that unsubscribes it."""
        self._listeners.append(listener)
        return lambda: self._unsubscribe(listener)

    def _unsubscribe(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

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
            if not self._released:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(fut), seconds)
            return fut.done()
        finally:
            self.forget(run_id, fut)

    def release_all(self) -> None:
        """The daemon is stopping: every wait ends now, and any later one at once, so each
        long-poll answers with the run as it is. The server waits for its requests to end,
        and a client waiting for a 30-minute run held the stop up for all of it."""
        self._released = True
        for waiters in self._waiters.values():
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    def changed(self, run_id: str, status: RunStatus) -> None:
        if status.finished:
            for fut in self._waiters.pop(run_id, []):
                if not fut.done():
                    fut.set_result(None)
        for listener in list(self._listeners):
            listener(run_id, status)
