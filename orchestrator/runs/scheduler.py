"""The queue: priority (1 first) then age, up to the concurrency limit.

The database is the source of truth for a run's status; the heap is only
the order in which queued runs are tried. A queued run is claimed with a
guarded ``queued → running`` transition, so a cancel that lands first simply
makes the claim fail and the run is skipped. A new run that finds a free slot
skips the queue: ``start_now`` spawns it at once and its first write already
says ``running`` (see ``RunService.create``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import heapq
import logging

from orchestrator.models import Run, RunStatus
from orchestrator.runs.executor import Executor, Record, Spawned
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
        self._stopping = False

    def start_now(self, run: Run, record: Record) -> asyncio.Task[None] | None:
        """Start a new run at once if a slot is free (``queuing.disabled`` runs always
        get one, past the limit); ``record`` writes it when its process exists."""
        if self._stopping or (self.active >= self.concurrency and not run.queuing_disabled):
            return None
        self._runs[run.id] = run
        task = asyncio.create_task(self._run(run.id, record), name=run.id)
        self._active[run.id] = task
        return task

    def submit(self, run: Run) -> None:
        """Queue a run written ``queued``: by priority (1 first), then age."""
        self._runs[run.id] = run
        heapq.heappush(self._heap, (run.priority, run.created_at, run.id))
        self._pump()

    @property
    def active(self) -> int:
        return len(self._active)

    @property
    def queued(self) -> int:
        return len(self._heap)

    def _pump(self) -> None:
        while not self._stopping and self._heap and len(self._active) < self.concurrency:
            _, _, run_id = heapq.heappop(self._heap)
            if run_id not in self._active:
                self._active[run_id] = asyncio.create_task(self._run(run_id), name=run_id)

    async def _run(self, run_id: str, record: Record | None = None) -> None:
        try:
            run = self._runs.get(run_id)
            if run is None:
                return
            if record is None:
                async with self.store.single() as w:
                    claimed = await w.runs.transition(run_id, RunStatus.RUNNING, [RunStatus.QUEUED])
                if not claimed:  # canceled while it waited
                    return
                run.status = RunStatus.RUNNING
                record = functools.partial(self._note, run_id)
            await self.executor.execute(run, record)
        except Exception:
            log.exception("scheduler failed on run %s", run_id)
        finally:
            self._active.pop(run_id, None)
            self._runs.pop(run_id, None)
            self._pump()

    async def _note(self, run_id: str, spawned: Spawned) -> bool:
        """A claimed run's processes, for recovery."""
        if spawned.pid is not None:
            async with self.store.single() as w:
                await w.runs.update(run_id, **dataclasses.asdict(spawned))
        return True

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
