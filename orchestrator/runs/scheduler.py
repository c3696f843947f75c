"""The queue: priority (1 first) then age, up to the concurrency limit.

The database is the source of truth for a run's status; the heap is only
the order in which queued runs are tried. A queued run is claimed with a
guarded ``queued → running`` transition, so a cancel that lands first simply
makes the claim fail and the run is skipped. A new run that finds a free slot
is *admitted*: it is written ``running`` in the first place, which saves the
claim's write on the path from submit to spawn.
"""

from __future__ import annotations

import asyncio
import heapq
import logging

from orchestrator.models import Run, RunStatus
from orchestrator.runs.executor import Executor
from orchestrator.store import Store

log = logging.getLogger("orch.scheduler")

DAEMON_STOPPED = "daemon stopped while the run was running"


class Scheduler:
    def __init__(self, store: Store, executor: Executor, concurrency: int) -> None:
        self.store, self.executor = store, executor
        self.concurrency = max(1, concurrency)
        self._heap: list[tuple[int, str, str]] = []
        self._runs: dict[str, Run] = {}
        """Submitted runs by id, so starting one needs no re-read of its row."""
        self._active: dict[str, asyncio.Task[None]] = {}
        self._admitted: set[str] = set()
        """Slots taken by ``admit`` for runs whose row is being written."""
        self._stopping = False

    def admit(self, run: Run) -> bool:
        """Take a slot for a new run now, if one is free; the caller then writes the run
        ``running`` and calls ``submit`` (or ``release`` if the write failed).
        ``queuing.disabled`` runs always get one, past the concurrency limit."""
        if self._stopping or (self.active >= self.concurrency and not run.queuing_disabled):
            return False
        self._admitted.add(run.id)
        return True

    def release(self, run_id: str) -> None:
        """Give back an admitted slot whose run was never written."""
        self._admitted.discard(run_id)
        self._pump()

    def submit(self, run: Run) -> None:
        """Start an admitted run, or queue a queued one by priority then age."""
        self._runs[run.id] = run
        if run.id in self._admitted:
            self._admitted.discard(run.id)
            if not self._stopping:  # else the next start's recovery ends it as stopped
                self._active[run.id] = asyncio.create_task(self._run(run.id), name=run.id)
            return
        heapq.heappush(self._heap, (run.priority, run.created_at, run.id))
        self._pump()

    @property
    def active(self) -> int:
        return len(self._active) + len(self._admitted)

    @property
    def queued(self) -> int:
        return len(self._heap)

    def _pump(self) -> None:
        while not self._stopping and self._heap and self.active < self.concurrency:
            _, _, run_id = heapq.heappop(self._heap)
            if run_id not in self._active:
                self._active[run_id] = asyncio.create_task(self._run(run_id), name=run_id)

    async def _run(self, run_id: str) -> None:
        try:
            run = self._runs.get(run_id)
            if run is None:
                return
            if run.status == RunStatus.QUEUED:
                async with self.store.single() as w:
                    claimed = await w.runs.transition(run_id, RunStatus.RUNNING, [RunStatus.QUEUED])
                if not claimed:
                    return
                run.status = RunStatus.RUNNING
            await self.executor.execute(run)
        except Exception:
            log.exception("scheduler failed on run %s", run_id)
        finally:
            self._active.pop(run_id, None)
            self._runs.pop(run_id, None)
            self._pump()

    async def stop(self, grace_seconds: float) -> None:
        """Stop starting runs; give running ones ``grace_seconds``, then end them as failed."""
        self._stopping = True
        if not self._active:
            return
        _done, pending = await asyncio.wait(list(self._active.values()), timeout=grace_seconds)
        for task in pending:
            self.executor.abort(task.get_name(), DAEMON_STOPPED)
        if pending:
            await asyncio.wait(pending, timeout=grace_seconds + 10)
