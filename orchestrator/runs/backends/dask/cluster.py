"""The cluster as the daemon sees it: its workers, their ``orch`` slots, and who left.

Slots are the sum of the workers' ``orch`` resources (``dask worker --resources
orch=N``): the engine's queue admits that many runs, and Dask's resource
admission keeps each worker within its own N. Workers are polled from the
scheduler every second (joins, leaves, new slots), and each worker's own event
topic is watched, on which the scheduler announces its removal at once with
the tasks it was processing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from distributed import Client

from orchestrator.runs.backends.dask.background import Background
from orchestrator.runs.backends.dask.protocol import RESOURCE
from orchestrator.runs.backends.dask.worker import describe

log = logging.getLogger("orch.dask.cluster")

POLL_SECONDS = 1.0

Gone = Callable[[str, set[str], str], None]
"""(worker, the keys it was processing if known, why) for a worker that left."""


@dataclass
class WorkerView:
    name: str
    slots: int
    isolation: dict[str, Any] = field(default_factory=dict)


class Cluster:
    def __init__(self, client: Client, address: str, background: Background) -> None:
        self.client, self.address, self.background = client, address, background
        self.workers: dict[str, WorkerView] = {}
        self._on_slots: list[Callable[[int], None]] = []
        self._on_gone: list[Gone] = []
        self._poller: asyncio.Task[None] | None = None

    @property
    def slots(self) -> int:
        return sum(w.slots for w in self.workers.values())

    def watch_slots(self, callback: Callable[[int], None]) -> None:
        self._on_slots.append(callback)
        callback(self.slots)

    def watch_gone(self, callback: Gone) -> None:
        self._on_gone.append(callback)

    async def start(self) -> None:
        await self.refresh()
        self._poller = asyncio.create_task(self._poll(), name="orch-dask-cluster")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    async def refresh(self) -> None:
        """Read the workers from the scheduler; announce slot changes and departures."""
        scheduler: Any = self.client.scheduler
        identity = await scheduler.identity(n_workers=-1)
        seen: dict[str, Any] = identity.get("workers", {})
        before = self.slots
        for address in set(self.workers) - set(seen):
            self._gone(address, set(), "left the cluster")
        for address, info in seen.items():
            slots = int((info.get("resources") or {}).get(RESOURCE, 0))
            known = self.workers.get(address)
            if known is None:
                self._joined(address, str(info.get("name", address)), slots)
            else:
                known.slots = slots
        if self.slots != before:
            log.warning("cluster %s: %d worker(s), %d slot(s)", self.address, len(seen), self.slots)
            for callback in self._on_slots:
                callback(self.slots)

    def _joined(self, address: str, name: str, slots: int) -> None:
        self.workers[address] = WorkerView(name, slots)
        self.client.subscribe_topic(address, functools.partial(self._on_worker_event, address))
        if slots > 0:
            self.background.spawn(self._describe(address), f"describe {address}")

    def _gone(self, address: str, keys: set[str], why: str) -> None:
        view = self.workers.pop(address, None)
        if view is None:
            return
        with contextlib.suppress(ValueError):
            self.client.unsubscribe_topic(address)
        for tell in self._on_gone:
            tell(address, keys, why)
        for resize in self._on_slots:
            resize(self.slots)

    def _on_worker_event(self, address: str, event: tuple[float, Any]) -> None:
        """The scheduler's own word on a worker (its topic is its address)."""
        _, msg = event
        if isinstance(msg, dict) and msg.get("action") == "remove-worker":
            keys = {str(k) for k in msg.get("processing-tasks") or ()}
            self._gone(address, keys, "closed" if msg.get("expected") else "was lost")

    async def _describe(self, address: str) -> None:
        with contextlib.suppress(Exception):  # informative only
            answers = await self.client.run(describe, workers=[address], on_error="return")
            info = answers.get(address)
            if isinstance(info, dict) and address in self.workers:
                self.workers[address].isolation = info

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                await self.refresh()
            except Exception as exc:  # the scheduler may be restarting: keep trying
                log.warning("cannot read the workers of %s: %s", self.address, exc)
