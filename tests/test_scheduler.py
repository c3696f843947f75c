"""The scheduler, executor and run-state service in process, over a fake backend.

Real SQLite, real asyncio, the real engine code; only the model processes are
replaced by ``FakeBackend`` (futures the test resolves), so every ordering and
race is deterministic and each test takes milliseconds.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.config import Settings
from orchestrator.home import Home
from orchestrator.models import (
    App,
    EnvStatus,
    Executable,
    Failure,
    FailureKind,
    Limits,
    Run,
    RunStatus,
    now,
)
from orchestrator.runs.backend import StartFailed
from orchestrator.runs.events import RunEvents
from orchestrator.runs.executor import Executor
from orchestrator.runs.manifests import ManifestCache
from orchestrator.runs.recovery import recover
from orchestrator.runs.scheduler import Scheduler
from orchestrator.runs.states import RunStates
from orchestrator.store import Store
from tests.fakes import FakeBackend, FakeExecution, result

APP, EXE = "app", "e" * 64
MANIFEST = {"type": "python", "runtime": "py", "files": ["main.py"]}
_ids = itertools.count()


@dataclass
class Engine:
    store: Store
    states: RunStates
    events: RunEvents
    backend: FakeBackend
    executor: Executor
    scheduler: Scheduler
    seen: list[tuple[str, RunStatus]]

    async def queue(self, priority: int = 6, **kw: object) -> Run:
        run = Run(f"run-{next(_ids):06d}", APP, "devint", EXE, priority=priority, created_at=now())
        for key, value in kw.items():
            setattr(run, key, value)
        await self.states.create(run)
        self.scheduler.submit(run)
        return run

    async def status(self, run: Run) -> RunStatus:
        got = await self.store.read.runs.get(run.id)
        assert got is not None
        return got.status


async def _engine(tmp_path: Path, slots: int, backend: FakeBackend | None = None) -> Engine:
    home = Home(tmp_path)
    home.create()
    store = Store(home.db)
    await store.open()
    async with store.write() as w:
        await w.executables.insert_if_missing(
            Executable(EXE, 1, MANIFEST, "python", "py", EnvStatus.NONE), "b"
        )
        if await w.apps.get(APP) is None:
            await w.apps.insert(App(APP, "App", executable_id=EXE))
    events = RunEvents()
    seen: list[tuple[str, RunStatus]] = []
    events.subscribe(lambda run_id, status: seen.append((run_id, status)))
    states = RunStates(store, events)
    backend = backend or FakeBackend(slots)
    executor = Executor(store, Settings(home=home), backend, states, ManifestCache())
    scheduler = Scheduler(executor, states, backend.slots)
    return Engine(store, states, events, backend, executor, scheduler, seen)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    e = await _engine(tmp_path, slots=2)
    yield e
    await e.scheduler.stop(0.1)
    await e.store.close()


async def test_priority_then_age_within_the_slots(engine: Engine) -> None:
    blockers = [await engine.queue() for _ in range(2)]
    await engine.backend.wait_started(2)
    low = await engine.queue(priority=9)
    first_normal = await engine.queue()
    urgent = await engine.queue(priority=1)
    second_normal = await engine.queue()
    assert engine.scheduler.active == 2  # never more than the slots
    for run in blockers:
        engine.backend.finish(run.id)
    await engine.backend.wait_started(4)
    engine.backend.finish(engine.backend.started[2])
    engine.backend.finish(engine.backend.started[3])
    await engine.backend.wait_started(6)
    for run_id in engine.backend.started[4:]:
        engine.backend.finish(run_id)
    await engine.scheduler.idle()
    order = engine.backend.started[2:]
    assert order == [urgent.id, first_normal.id, second_normal.id, low.id]
    assert all([await engine.status(r) == RunStatus.SUCCEEDED for r in (urgent, low)])


async def test_every_transition_is_published_in_order(engine: Engine) -> None:
    run = await engine.queue()
    await engine.backend.wait_started(1)
    engine.backend.finish(run.id, result(exit_code=3))
    await engine.scheduler.idle()
    assert [s for r, s in engine.seen if r == run.id] == [
        RunStatus.QUEUED,
        RunStatus.RUNNING,
        RunStatus.FAILED,
    ]
    got = await engine.store.read.runs.get(run.id)
    assert got is not None and got.failure == Failure(FailureKind.EXIT, measured=3)
    assert got.placement is not None and got.placement["backend"] == "fake"
    assert got.statistics == {"result": {"value": 1}}


async def test_a_limit_breach_is_a_typed_failure(engine: Engine) -> None:
    run = await engine.queue(limits=Limits(memory_mb=64))
    await engine.backend.wait_started(1)
    engine.backend.finish(run.id, result(exit_code=None, signal=9, breach="memory", measured=80))
    await engine.scheduler.idle()
    got = await engine.store.read.runs.get(run.id)
    assert got is not None and got.failure == Failure(FailureKind.MEMORY, 64.0, 80)


async def test_a_canceled_queued_run_never_starts(engine: Engine) -> None:
    blockers = [await engine.queue() for _ in range(2)]
    await engine.backend.wait_started(2)
    waiting = await engine.queue()
    engine.scheduler.discard(waiting.id)
    assert await engine.states.cancel_queued([waiting.id]) == [waiting.id]
    for run in blockers:
        engine.backend.finish(run.id)
    await engine.scheduler.idle()
    assert waiting.id not in engine.backend.started
    assert await engine.status(waiting) == RunStatus.CANCELED


async def test_the_staged_next_run_is_discarded_on_cancel(engine: Engine) -> None:
    blockers = [await engine.queue() for _ in range(2)]
    await engine.backend.wait_started(2)
    staged = await engine.queue()
    await asyncio.sleep(0.01)
    assert staged.id in engine.backend.prepared  # made ready while every slot is busy
    engine.scheduler.discard(staged.id)
    await engine.states.cancel_queued([staged.id])
    assert engine.backend.discarded == [staged.id]
    for run in blockers:
        engine.backend.finish(run.id)
    await engine.scheduler.idle()


async def test_canceling_a_running_run(engine: Engine) -> None:
    run = await engine.queue()
    await engine.backend.wait_started(1)
    engine.executor.cancel(run.id)
    await engine.scheduler.idle()
    assert await engine.status(run) == RunStatus.CANCELED
    assert engine.backend.executions[run.id].grace == [2.0]


async def test_a_claim_lost_to_a_cancel_kills_the_spawned_run(engine: Engine) -> None:
    """A queued run is spawned before its claim is written; a cancel in between wins."""
    blockers = [await engine.queue() for _ in range(2)]
    await engine.backend.wait_started(2)
    late = await engine.queue()
    original = engine.states.claim

    async def cancel_first(run: Run, placement: object) -> bool:
        await engine.states.cancel_queued([run.id])
        return await original(run, placement)  # type: ignore[arg-type]

    engine.states.claim = cancel_first  # type: ignore[method-assign]
    engine.backend.finish(blockers[0].id)
    await engine.backend.wait_started(3)
    engine.backend.finish(blockers[1].id)
    await engine.scheduler.idle()
    assert await engine.status(late) == RunStatus.CANCELED
    assert engine.backend.executions[late.id].grace == [0]  # killed at once


async def test_a_run_that_cannot_start_fails_with_its_reason(engine: Engine) -> None:
    run = Run("run-refused", APP, "devint", EXE, created_at=now())
    engine.backend.refuse[run.id] = StartFailed(Failure(FailureKind.ENVIRONMENT, detail="no pkg"))
    await engine.states.create(run)
    engine.scheduler.submit(run)
    await engine.scheduler.idle()
    got = await engine.store.read.runs.get(run.id)
    assert got is not None and got.status == RunStatus.FAILED
    assert got.error == "python environment failed to build:\nno pkg"


async def test_stopping_ends_running_runs_and_keeps_queued_ones(engine: Engine) -> None:
    running = [await engine.queue() for _ in range(2)]
    await engine.backend.wait_started(2)
    waiting = await engine.queue()
    await engine.scheduler.stop(0.01)
    for run in running:
        got = await engine.store.read.runs.get(run.id)
        assert got is not None and got.failure == Failure(FailureKind.DAEMON_STOPPED)
    assert await engine.status(waiting) == RunStatus.QUEUED


async def test_recovery_ends_lost_runs_and_adopts_survivors(tmp_path: Path) -> None:
    first = await _engine(tmp_path, slots=2)
    lost, alive = await first.queue(), await first.queue()
    await first.backend.wait_started(2)
    waiting = await first.queue()
    for task in first.scheduler._tasks.values():  # the daemon dies: nothing more is written
        task.cancel()
    await asyncio.sleep(0)
    await first.store.close()

    backend = FakeBackend(2)
    done: asyncio.Future = asyncio.get_running_loop().create_future()
    backend.survivors[alive.id] = FakeExecution(alive.id, done, {"backend": "fake"})
    again = await _engine(tmp_path, slots=2, backend=backend)
    report = await recover(again.store, again.states, backend)
    assert backend.recovered == [([lost.id, alive.id], [waiting.id])]
    assert report.failed == [lost.id]
    assert [r.id for r, _ in report.reattached] == [alive.id]
    for run, execution in report.reattached:
        again.scheduler.adopt(run, execution)
    for run in report.queued:
        again.scheduler.submit(run)
    done.set_result(result())
    await backend.wait_started(1)
    backend.finish(waiting.id)
    await again.scheduler.idle()
    assert await again.status(lost) == RunStatus.FAILED
    assert await again.status(alive) == RunStatus.SUCCEEDED
    assert await again.status(waiting) == RunStatus.SUCCEEDED
    await again.store.close()


def test_only_the_run_state_service_writes_a_run_status() -> None:
    """pueue's rule: one owner per state change. The store's status writes are called
    from ``runs/states.py`` and nowhere else in orch."""
    root = Path(__file__).resolve().parent.parent / "orchestrator"
    writes = (
        "runs.insert(",
        "runs.insert_many(",
        "runs.transition(",
        "runs.transition_many(",
        "runs.transition_of_experiment(",
    )
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "states.py" and any(w in path.read_text() for w in writes)
    ]
    assert offenders == []
