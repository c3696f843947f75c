"""The only writer of a run's status (pueue's one owner per state change).

Creating a run, claiming it, finishing it, canceling it, ending it at
recovery: each is a method here, each writes through the guarded SQL of
``store/runs.py`` (which checks ``models.RUN_TRANSITIONS`` in the statement
itself) and, once committed, tells ``RunEvents``. Nothing else in orch writes
a run's ``status``; a test checks that no other module calls the store's
insert or transition.

The hot-path writes (a new run, a claim, a finish) are single statements
outside ``BEGIN``/``COMMIT`` (``Store.single``): one thread hop each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from orchestrator.models import Failure, FailureKind, Run, RunStatus, epoch, now
from orchestrator.runs.events import RunEvents
from orchestrator.store import Repos, Store

OwnerRows = Callable[[Repos], Awaitable[object]]
"""Writes the rows that own a set of new runs (an experiment's), in the runs' transaction."""
BATCH = 500
"""Runs a bulk cancel moves per write: ~30 ms of SQLite (a row and its five indexes take
~60 µs), so the loop answers between two and no other writer waits long."""


@dataclass(frozen=True)
class Finish:
    """What is recorded when a run ends (only the facts that were measured)."""

    status: RunStatus
    failure: Failure | None = None
    exit_code: int | None = None
    signal: int | None = None
    duration_ms: float | None = None
    cpu_seconds: float | None = None
    peak_memory_mb: float | None = None
    output_size: int | None = None
    statistics: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    placement: dict[str, Any] | None = None
    """Where the run ran, when its end knows more than its claim did (a Dask run: the
    worker whose attempt produced its result, and the protections its model ran under);
    replaces the claim's placement. None keeps that one."""

    def fields(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "status" and v is not None}
        return data


class RunStates:
    def __init__(self, store: Store, events: RunEvents) -> None:
        self.store, self.events = store, events

    async def create(self, run: Run) -> None:
        """Write a new run in its initial status (queued, running, or finished when tracked).

        A run created ``running`` carries its ``placement`` and ``started_at``; the
        row and the fact that it runs are one statement.
        """
        _stamp(run)
        async with self.store.single() as w:
            await w.runs.insert(run)
        self.events.changed(run.id, run.status)

    async def create_many(
        self, runs: list[Run], owner: OwnerRows | None = None, lead: Run | None = None
    ) -> None:
        """Queued runs in one write (an experiment's, an ensemble run's children);
        ``owner`` writes the row they belong to (the experiment, the ensemble) in the same
        transaction, before them, and ``lead`` is a run written first (the ensemble run
        itself, as ``create`` writes one).

        One transaction, so that a daemon killed (or a disk filled) between the owner's row
        and its runs leaves neither: an experiment committed alone would be settled at the
        next start as ended with no runs, with nothing to say why, and an ensemble run
        failed as if the daemon had stopped under it."""
        leads = [] if lead is None else [lead]
        for run in leads:
            _stamp(run)
        async with self.store.write() as w:
            for run in leads:
                await w.runs.insert(run)
            if owner is not None:
                await owner(w)
            await w.runs.insert_many(runs)
        for run in [*leads, *runs]:
            self.events.changed(run.id, run.status)

    async def claim(self, run: Run, placement: dict[str, Any] | None) -> bool:
        """queued -> running, naming where it runs; False if it was canceled meanwhile."""

        async def write() -> bool:
            async with self.store.single() as w:
                return await w.runs.transition(
                    run.id, RunStatus.RUNNING, [RunStatus.QUEUED], placement=placement
                )

        claimed = await self.store.until_written(write)
        if claimed:
            run.status, run.placement = RunStatus.RUNNING, placement
            self.events.changed(run.id, RunStatus.RUNNING)
        return claimed

    async def finish(self, run_id: str, end: Finish) -> bool:
        """running -> succeeded | failed | canceled, with what was measured (and where it
        ran, if ``end.placement`` says more than the claim did)."""

        async def write() -> bool:
            async with self.store.single() as w:
                return await w.runs.transition(
                    run_id, end.status, expect=[RunStatus.RUNNING], **end.fields()
                )

        moved = await self.store.until_written(write)
        if moved:
            self.events.changed(run_id, end.status)
        return moved

    async def fail_unstarted(self, run_id: str, failure: Failure) -> bool:
        """queued -> failed: a run that can never start (e.g. its environment failed)."""
        async with self.store.single() as w:
            moved = await w.runs.transition(
                run_id, RunStatus.FAILED, [RunStatus.QUEUED], failure=failure
            )
        if moved:
            self.events.changed(run_id, RunStatus.FAILED)
        return moved

    async def cancel_queued(self, run_ids: Iterable[str]) -> list[str]:
        """queued -> canceled for every run still queued; returns the ones that moved.

        A write per ``BATCH`` runs, told once it is committed: each run moves alone (its
        guard is its own), and thousands at once held the loop and every writer."""
        ids, moved = list(run_ids), []
        for start in range(0, len(ids), BATCH):
            if start:
                await asyncio.sleep(0)  # let the loop answer between two batches
            async with self.store.write() as w:
                batch = await w.runs.transition_many(
                    ids[start : start + BATCH], RunStatus.CANCELED, [RunStatus.QUEUED]
                )
            self._tell(batch, RunStatus.CANCELED)
            moved.extend(batch)
        return moved

    async def cancel_queued_of_experiment(self, app_id: str, experiment_id: str) -> list[str]:
        """queued -> canceled for every queued run of an experiment; returns the ids.

        Found and moved by the store a batch per statement, none of them read: canceling
        39,000 queued runs used to read each whole first and took 12.9 s."""
        moved: list[str] = []
        while True:
            async with self.store.write() as w:
                batch = await w.runs.transition_of_experiment(
                    app_id, experiment_id, RunStatus.CANCELED, [RunStatus.QUEUED], BATCH
                )
            self._tell(batch, RunStatus.CANCELED)
            moved.extend(batch)
            if len(batch) < BATCH:
                return moved
            await asyncio.sleep(0)

    def _tell(self, run_ids: list[str], status: RunStatus) -> None:
        for run_id in run_ids:
            self.events.changed(run_id, status)

    async def end_lost(self, runs: Iterable[Run], kind: FailureKind, detail: str = "") -> list[str]:
        """running -> failed for runs whose processes are gone with no outcome
        (the daemon stopped, the worker was lost): recovery's verdict.

        Each is given the duration that is known: from its ``started_at`` until this
        verdict, an upper bound. No daemon watched it meanwhile, so when it really
        ended is not known: its model may have died with the daemon, or run on (a local
        model outlives a SIGKILLed daemon) until recovery killed it. A run with no
        ``started_at`` records none (0, as before)."""
        failure = Failure(kind, detail=detail)
        moved = []
        async with self.store.write() as w:
            for run in runs:
                if await w.runs.transition(
                    run.id,
                    RunStatus.FAILED,
                    [RunStatus.RUNNING],
                    failure=failure,
                    duration_ms=_elapsed_ms(run.started_at),
                ):
                    moved.append(run.id)
        for run_id in moved:
            self.events.changed(run_id, RunStatus.FAILED)
        return moved


def _elapsed_ms(started_at: str | None) -> float | None:
    """Milliseconds from ``started_at`` until now (never below 0: a clock set back)."""
    start = epoch(started_at)
    return None if start is None else max(0.0, (time.time() - start) * 1000)


def _stamp(run: Run) -> None:
    """A new run's times, as its initial status implies: a run created ``running``
    started now, one created finished (tracked) ended now."""
    if run.status == RunStatus.RUNNING and run.started_at is None:
        run.started_at = now()
    if run.status.finished and run.ended_at is None:
        run.ended_at = now()
