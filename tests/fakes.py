"""An in-memory execution backend, for in-process tests of the engine above the sandbox.

Nothing here is a mock of orch's own code: it is a second implementation of the
``Backend`` protocol whose "processes" are futures the test resolves, so the
scheduler, the executor and the run-state service run for real against a real
SQLite store, deterministically and in milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.models import Run
from orchestrator.runs.backend import Collected, Job, StartFailed
from orchestrator.runs.process import ProcessResult


def result(exit_code: int | None = 0, **facts: Any) -> ProcessResult:
    values: dict[str, Any] = {
        "exit_code": exit_code,
        "signal": None,
        "duration_seconds": 0.01,
        "cpu_seconds": 0.01,
        "peak_memory_mb": 1.0,
        "breach": None,
        "measured": None,
        "canceled": False,
        "spawn_error": None,
    }
    return ProcessResult(**(values | facts))


@dataclass
class FakeExecution:
    run_id: str
    done: asyncio.Future[ProcessResult]
    placement: dict[str, Any] | None = None
    grace: list[float] = field(default_factory=list)

    async def wait(self, gone: Callable[[], None] | None = None) -> ProcessResult:
        return await asyncio.shield(self.done)

    def cancel(self, grace_seconds: float = 2.0) -> None:
        self.grace.append(grace_seconds)
        if not self.done.done():
            self.done.set_result(result(exit_code=None, signal=15, canceled=True))


class FakeBackend:
    """Runs nothing: ``finish(run_id)`` ends a started run with the facts given."""

    name = "fake"

    def __init__(self, slots: int = 2) -> None:
        self._slots = slots
        self.started: list[str] = []
        self.prepared: list[str] = []
        self.discarded: list[str] = []
        self.executions: dict[str, FakeExecution] = {}
        self.refuse: dict[str, StartFailed] = {}
        """Runs whose ``prepare`` fails, by id."""
        self.survivors: dict[str, FakeExecution] = {}
        """What ``recover`` reattaches to, by run id."""
        self.recovered: list[tuple[list[str], list[str]]] = []
        self.closed = False
        self.changed = asyncio.Event()

    @property
    def slots(self) -> int:
        return self._slots

    @property
    def isolation(self) -> dict[str, Any]:
        return {"containment": "none (fake)"}

    @property
    def details(self) -> dict[str, Any]:
        return {}

    async def prepare(self, job: Job) -> str:
        self.prepared.append(job.run.id)
        if job.run.id in self.refuse:
            raise self.refuse[job.run.id]
        return f"prepared {job.run.id}"

    def discard(self, run_id: str, staging: asyncio.Future[Any]) -> None:
        staging.cancel()
        self.discarded.append(run_id)

    async def start(self, job: Job, prepared: Any) -> FakeExecution:
        assert prepared == f"prepared {job.run.id}"
        done: asyncio.Future[ProcessResult] = asyncio.get_running_loop().create_future()
        execution = FakeExecution(job.run.id, done, {"backend": "fake", "at": time.time()})
        self.executions[job.run.id] = execution
        self.started.append(job.run.id)
        self.changed.set()
        return execution

    async def collect(self, job: Job, prepared: Any, result: ProcessResult) -> Collected:
        return Collected(output_size=2, statistics={"result": {"value": 1}})

    async def recover(
        self, running: list[Run], queued: list[Run], known: set[str]
    ) -> dict[str, FakeExecution]:
        self.recovered.append(([r.id for r in running], [r.id for r in queued]))
        return {r.id: self.survivors[r.id] for r in running if r.id in self.survivors}

    async def close(self) -> None:
        self.closed = True

    def finish(self, run_id: str, facts: ProcessResult | None = None) -> None:
        self.executions[run_id].done.set_result(facts or result())

    async def wait_started(self, count: int) -> None:
        """Until ``count`` runs started (at most 5 s)."""
        async with asyncio.timeout(5):
            while len(self.started) < count:
                self.changed.clear()
                await self.changed.wait()
