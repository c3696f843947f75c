"""The queue: priority (1 first) then age, up to the concurrency limit.

The database is the source of truth for a run's status; the heap is only the
order in which queued runs are tried. A slot is a live process tree: it is
taken when a run is handed to the executor and given back the moment the
run's processes are gone, so the next run is spawned while the previous one's
outcome is still being collected and written.

Every run is spawned *before* its status says ``running``: the write that says
so also names its processes (pid, cgroup), so it is one statement off the path
to the spawn. A new run that finds a free slot is written for the first time
then (see ``RunService.create``); a queued run is claimed with a guarded
``queued → running`` transition, and if a cancel got there first the claim
fails and the just-spawned process is killed. Cancels of queued runs also call
``discard``, so a run still waiting in the heap is never spawned at all.

While every slot is busy, the run next in line is *staged* (its workspace and
command made, see ``Executor.stage``): when a slot frees, handing it over is
all that is left between one run's exit and the next one's spawn. A staged run
that is discarded has its workspace cleared again.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import logging
from collections.abc import Callable, Iterable
from typing import Any

from orchestrator.models import Failure, FailureKind, Run
from orchestrator.runs.backend import Execution, Job
from orchestrator.runs.executor import Executor, Record
from orchestrator.runs.states import RunStates

log = logging.getLogger("orch.scheduler")

Staging = asyncio.Task[tuple[Job, Any]]
COMPACT_SLACK = 64
"""Entries of discarded runs the heap may keep before ``discard_many`` rebuilds it."""


class Scheduler:
    def __init__(
        self,
        executor: Executor,
        states: RunStates,
        concurrency: int,
        admit: Callable[[], bool] = lambda: True,
    ) -> None:
        self.executor, self.states = executor, states
        self.concurrency = max(1, concurrency)
        self._admit = admit
        """Whether queued runs may start now (not while the disk is low: see ``resume``)."""
        self._heap: list[tuple[int, str, str]] = []
        self._waiting: dict[str, Run] = {}
        """Queued runs by id, so starting one needs no re-read of its row."""
        self._tasks: dict[str, asyncio.Task[None]] = {}
        """Every run handed to the executor, until its outcome is written."""
        self._slots: set[str] = set()
        """The runs whose processes may still be alive."""
        self._staged: dict[str, Staging] = {}
        """Queued runs being (or done being) staged, by id."""
        self._stopping = False

    def start_now(self, run: Run, record: Record) -> asyncio.Task[None] | None:
        """Start a new run at once if a slot is free (``queuing.disabled`` runs always
        get one, past the limit); ``record`` writes it when its process exists."""
        if self._stopping or (self.active >= self.concurrency and not run.queuing_disabled):
            return None
        return self._start(run, record)

    def submit(self, run: Run) -> None:
        """Queue a run written ``queued``: by priority (1 first), then age."""
        self._waiting[run.id] = run
        heapq.heappush(self._heap, (run.priority, run.created_at, run.id))
        self._pump()

    def discard(self, run_id: str) -> None:
        """Never start this queued run (it is being canceled); no-op once it started."""
        self._waiting.pop(run_id, None)
        if (staging := self._staged.pop(run_id, None)) is not None:
            self.executor.unstage(run_id, staging)

    def discard_many(self, run_ids: Iterable[str]) -> None:
        """``discard`` for many runs at once: none of them is started or staged from now
        on, whatever happens to their rows. The heap is rebuilt without them when they
        were most of it (an experiment's 39,000 stayed there until the queue drained)."""
        for run_id in run_ids:
            self.discard(run_id)
        if len(self._heap) > 2 * len(self._waiting) + COMPACT_SLACK:
            self._heap = [item for item in self._heap if item[2] in self._waiting]
            heapq.heapify(self._heap)
        self._stage_next()  # the head may have been discarded: stage the next in line

    def discard_matching(self, match: Callable[[Run], bool]) -> None:
        """``discard_many`` for the waiting runs ``match`` picks (an experiment's, when it
        is canceled or deleted): found in memory, where reading their ids took longer
        than canceling them."""
        self.discard_many([run.id for run in self._waiting.values() if match(run)])

    def resize(self, concurrency: int) -> None:
        """The backend's slots changed (a cluster's workers came or went): start what fits.

        Zero is allowed here (a cluster with no worker): runs then wait queued, where they
        can still be reordered and canceled, instead of waiting inside the backend."""
        self.concurrency = max(0, concurrency)
        self._pump()

    @property
    def active(self) -> int:
        return len(self._slots)

    @property
    def queued(self) -> int:
        return len(self._waiting)

    async def idle(self) -> None:
        """Return once nothing is queued or running (arq's burst mode, for tests and tools)."""
        while (self._waiting and not self._stopping) or self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            await asyncio.sleep(0)  # let a freed slot's next run start

    def resume(self) -> None:
        """Start what waits, now that ``admit`` says yes again (the disk has room)."""
        self._pump()

    def _pump(self) -> None:
        while (
            not self._stopping and self._heap and self.active < self.concurrency and self._admit()
        ):
            _, _, run_id = heapq.heappop(self._heap)
            if (run := self._waiting.pop(run_id, None)) is not None:
                staged = self._staged.pop(run_id, None)
                self._start(run, functools.partial(self._claim, run), staged)
        self._stage_next()

    def _stage_next(self) -> None:
        """Stage the run at the head of the queue (the next to get a slot), once.

        Not a run with secrets: their values are read when it starts, so an update or a
        delete of its collection while it waits reaches it (staged ahead, it kept the
        values of the moment it reached the head of the queue)."""
        while self._heap and self._heap[0][2] not in self._waiting:
            heapq.heappop(self._heap)  # discarded
        if self._stopping or not self._heap or (run_id := self._heap[0][2]) in self._staged:
            return
        run = self._waiting[run_id]
        if not run.secrets_collection_id:
            self._staged[run_id] = asyncio.create_task(self.executor.stage(run))

    def adopt(self, run: Run, execution: Execution) -> None:
        """Supervise a running run the backend reattached to after a restart (it takes a
        slot like any other)."""
        self._slots.add(run.id)
        release = functools.partial(self._release, run.id)
        self._track(run.id, self.executor.resume(run, execution, release))

    def _start(self, run: Run, record: Record, staged: Staging | None = None) -> asyncio.Task[None]:
        self._slots.add(run.id)
        release = functools.partial(self._release, run.id)
        return self._track(run.id, self.executor.execute(run, record, release, staged))

    def _track(self, run_id: str, work: Any) -> asyncio.Task[None]:
        task = asyncio.create_task(self._run(run_id, work), name=run_id)
        self._tasks[run_id] = task
        return task

    async def _run(self, run_id: str, work: Any) -> None:
        try:
            await work
        except Exception:
            log.exception("scheduler failed on run %s", run_id)
        finally:
            self._tasks.pop(run_id, None)
            self._release(run_id)

    def _release(self, run_id: str) -> None:
        """The run's processes are gone: its slot goes to the next run now."""
        if run_id in self._slots:
            self._slots.remove(run_id)
            self._pump()

    async def _claim(self, run: Run, placement: dict[str, Any] | None) -> bool:
        """Mark a spawned queued run running, naming where it runs; False if canceled."""
        return await self.states.claim(run, placement)

    async def stop(self, grace_seconds: float) -> None:
        """Stop starting runs; give running ones ``grace_seconds``, then end them as failed."""
        self._stopping = True
        for run_id, staging in self._staged.items():  # they stay queued, to start afresh
            self.executor.unstage(run_id, staging)
        self._staged.clear()
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(list(self._tasks.values()), timeout=grace_seconds)
        stopped = Failure(FailureKind.DAEMON_STOPPED)
        for task in pending:
            self.executor.abort(task.get_name(), stopped)
        if pending:
            await asyncio.wait(pending, timeout=grace_seconds + 10)
