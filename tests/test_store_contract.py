"""The store's contract, in process: every store passes it, fresh or migrated.

huey's pattern: one set of tests, run against every storage the daemon can
open. Here that is a database created by this orch and one brought forward
from each earlier schema version (``old_databases``): the rules must hold on
all of them, since users upgrade with their data.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.ensemble_models import EnsembleDefinition, RunGroup
from orchestrator.models import (
    FINISHED,
    RUN_TIMESTAMP,
    RUN_TRANSITIONS,
    AcceptanceTest,
    App,
    EnvStatus,
    Executable,
    Experiment,
    Failure,
    FailureKind,
    Run,
    RunStatus,
    RunType,
    now,
)
from orchestrator.runs.events import RunEvents
from orchestrator.runs.states import RunStates
from orchestrator.shadow_models import Comparison, ShadowStatus, ShadowTest
from orchestrator.store import Store
from orchestrator.store.migrations import MIGRATIONS
from orchestrator.switchback_models import Arm, Plan, ServedRun, SwitchbackStatus, SwitchbackTest
from tests.conftest import OldDatabase

_ids = itertools.count()
STATUSES = list(RunStatus)


@pytest.fixture(params=["fresh", *(f"from-v{v}" for v in range(1, len(MIGRATIONS)))])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, old_database: OldDatabase
) -> AsyncIterator[Store]:
    path = tmp_path / "orch.db"
    if request.param != "fresh":
        old_database(path, int(request.param.removeprefix("from-v")))
    s = Store(path)
    await s.open()
    yield s
    await s.close()


async def _app(store: Store) -> tuple[str, str]:
    app_id, exe_id = f"app-{next(_ids)}", f"{next(_ids):064x}"
    async with store.write() as w:
        await w.executables.insert_if_missing(
            Executable(exe_id, 1, {}, "python", "py", EnvStatus.NONE), "blobs/x"
        )
        await w.apps.insert(App(app_id, "App", executable_id=exe_id))
    return app_id, exe_id


def _run(app_id: str, exe_id: str, status: RunStatus = RunStatus.QUEUED, **kw: object) -> Run:
    run = Run(f"run-{next(_ids):08d}", app_id, "devint", exe_id, status=status, created_at=now())
    for key, value in kw.items():
        setattr(run, key, value)
    return run


async def _insert(store: Store, run: Run) -> None:
    async with store.single() as w:
        await w.runs.insert(run)


async def test_a_run_round_trips_with_its_facts(store: Store) -> None:
    app_id, exe_id = await _app(store)
    failure = Failure(FailureKind.MEMORY, limit=64.0, measured=70.5)
    run = _run(
        app_id, exe_id, RunStatus.FAILED, failure=failure, statistics={"a": [1]},
        placement={"backend": "x", "key": "k"}, options={"o": "1"}, ended_at=now(),
        run_type=RunType.ENSEMBLE_CHILD, parent_run_id="run-parent", metrics={"m": 1.5},
    )  # fmt: skip
    await _insert(store, run)
    got = await store.read.runs.get(run.id)
    assert got == run
    assert got is not None and got.error == "memory limit 64 MiB exceeded: peak 70 MiB"


async def test_a_runs_status_alone_is_what_its_row_says(store: Store) -> None:
    app_id, exe_id = await _app(store)
    run = _run(app_id, exe_id)
    await _insert(store, run)
    assert await store.read.runs.status(run.id) == (app_id, RunStatus.QUEUED)
    async with store.single() as w:
        await w.runs.transition(run.id, RunStatus.RUNNING)
    assert await store.read.runs.status(run.id) == (app_id, RunStatus.RUNNING)
    assert await store.read.runs.status("run-missing") is None


@pytest.mark.parametrize("status", STATUSES)
async def test_creation_follows_the_transition_table(store: Store, status: RunStatus) -> None:
    app_id, exe_id = await _app(store)
    run = _run(app_id, exe_id, status)
    if status in RUN_TRANSITIONS[None]:
        await _insert(store, run)
        assert (await store.read.runs.get(run.id)) is not None
    else:
        with pytest.raises(ValueError, match="cannot be created"):
            await _insert(store, run)


@pytest.mark.parametrize(("source", "target"), list(itertools.product(STATUSES, STATUSES)))
async def test_every_edge_of_the_table_and_no_other(
    store: Store, source: RunStatus, target: RunStatus
) -> None:
    app_id, exe_id = await _app(store)
    run = _run(app_id, exe_id, source)
    async with store.write() as w:  # any status, as a fixture (bypasses the creation rule)
        await w.runs.conn.execute(
            "INSERT INTO runs (id, app_id, instance_id, executable_id, status, priority,"
            " input_format, created_at) VALUES (?, ?, 'devint', ?, ?, 6, 'json', ?)",
            (run.id, app_id, exe_id, source.value, run.created_at),
        )
    async with store.single() as w:
        moved = await w.runs.transition(run.id, target)
    assert moved == (target in RUN_TRANSITIONS[source])
    got = await store.read.runs.get(run.id)
    assert got is not None
    assert got.status == (target if moved else source)
    if moved:
        assert getattr(got, RUN_TIMESTAMP[target]) is not None  # set by the transition


async def test_expect_narrows_the_sources(store: Store) -> None:
    app_id, exe_id = await _app(store)
    run = _run(app_id, exe_id, RunStatus.QUEUED)
    await _insert(store, run)
    async with store.single() as w:
        assert not await w.runs.transition(run.id, RunStatus.FAILED, [RunStatus.RUNNING])
    async with store.single() as w:
        assert await w.runs.transition(run.id, RunStatus.FAILED, [RunStatus.QUEUED])


async def test_a_cancel_racing_a_finish_has_one_winner(store: Store) -> None:
    app_id, exe_id = await _app(store)
    run = _run(app_id, exe_id, RunStatus.RUNNING, started_at=now())
    await _insert(store, run)

    async def move(to: RunStatus) -> bool:
        async with store.single() as w:
            return await w.runs.transition(run.id, to, [RunStatus.RUNNING])

    results = await asyncio.gather(move(RunStatus.CANCELED), move(RunStatus.SUCCEEDED))
    assert sorted(results) == [False, True]
    got = await store.read.runs.get(run.id)
    assert got is not None and got.status in FINISHED


async def test_transition_many_moves_only_eligible_runs(store: Store) -> None:
    app_id, exe_id = await _app(store)
    queued = [_run(app_id, exe_id) for _ in range(1203)]  # more than one chunk of ids
    running = _run(app_id, exe_id, RunStatus.RUNNING, started_at=now())
    async with store.write() as w:
        await w.runs.insert_many([*queued, running])
    ids = [r.id for r in queued] + [running.id, "run-unknown"]
    async with store.write() as w:
        moved = await w.runs.transition_many(ids, RunStatus.CANCELED, [RunStatus.QUEUED])
    assert sorted(moved) == sorted(r.id for r in queued)
    left = await store.read.runs.unfinished(app_id)
    assert [r.id for r in left] == [running.id]


async def test_listing_is_newest_first_with_keyset_paging(store: Store) -> None:
    app_id, exe_id = await _app(store)
    runs = [_run(app_id, exe_id) for _ in range(7)]
    async with store.write() as w:
        await w.runs.insert_many(runs)
    seen: list[str] = []
    before: tuple[str, str] | None = None
    while page := await store.read.runs.list(app_id, limit=3, before=before):
        seen += [r.id for r in page]
        before = (page[-1].created_at, page[-1].id)
    assert seen == [r.id for r in sorted(runs, key=lambda r: (r.created_at, r.id), reverse=True)]


async def test_experiment_counts(store: Store) -> None:
    app_id, exe_id = await _app(store)
    runs = [_run(app_id, exe_id, experiment_id="e1") for _ in range(3)]
    runs.append(_run(app_id, exe_id, RunStatus.SUCCEEDED, experiment_id="e1", ended_at=now()))
    async with store.write() as w:
        await w.runs.insert_many(runs)
    assert await store.read.runs.experiment_counts(app_id, "e1") == {"queued": 3, "succeeded": 1}
    assert await store.read.runs.unfinished_of_experiment(app_id, "e1") == 3
    assert await store.read.runs.unfinished_of_experiment(app_id, "e2") == 0


async def test_single_refuses_a_second_statement(store: Store) -> None:
    app_id, exe_id = await _app(store)
    with pytest.raises(RuntimeError, match="use write"):
        async with store.single() as w:
            await w.runs.insert(_run(app_id, exe_id))
            await w.runs.insert(_run(app_id, exe_id))


async def test_a_failed_write_rolls_back_whole(store: Store) -> None:
    app_id, exe_id = await _app(store)
    first = _run(app_id, exe_id)
    with pytest.raises(sqlite3.IntegrityError):
        async with store.write() as w:
            await w.runs.insert(first)
            await w.runs.insert(first)  # same id
    assert await store.read.runs.get(first.id) is None


async def test_an_experiment_and_its_runs_are_written_together(store: Store) -> None:
    """The experiment that owns new runs is written in their transaction: an insert of the
    runs that fails (here a duplicate id; in the daemon, a SIGKILL) leaves no experiment
    either, never one with no runs that the next start would settle unexplained."""
    app_id, exe_id = await _app(store)
    states = RunStates(store, RunEvents())
    exp = Experiment("together", app_id, "T", None, 1)
    run = _run(app_id, exe_id, experiment_id=exp.id)
    with pytest.raises(sqlite3.IntegrityError):
        await states.create_many([run, run], owner=lambda w: w.experiments.insert(exp))
    assert await store.read.experiments.get(app_id, exp.id) is None
    assert await store.read.runs.get(run.id) is None
    await states.create_many([run], owner=lambda w: w.experiments.insert(exp))
    assert await store.read.experiments.get(app_id, exp.id) is not None
    assert await store.read.runs.experiment_counts(app_id, exp.id) == {"queued": 1}


async def test_the_reader_cannot_write(store: Store) -> None:
    app_id, exe_id = await _app(store)
    with pytest.raises(sqlite3.OperationalError):
        await store.read.runs.insert(_run(app_id, exe_id))


async def test_deleting_an_app_deletes_its_runs(store: Store) -> None:
    app_id, exe_id = await _app(store)
    run = _run(app_id, exe_id)
    await _insert(store, run)
    async with store.write() as w:
        await w.apps.delete(app_id)
    assert await store.read.runs.get(run.id) is None


async def test_an_acceptance_test_lives_and_goes_with_its_experiment(store: Store) -> None:
    app_id, _ = await _app(store)
    metric = {"field": "result.value", "statistic": "mean", "params": {"operator": "lt"}}
    test = AcceptanceTest("e1", app_id, "E1", "ctl", "v1", "cand", "v2", [metric])
    async with store.write() as w:
        with pytest.raises(sqlite3.IntegrityError):  # a view on an experiment: it needs one
            await w.acceptance.insert(test)
    async with store.write() as w:
        await w.experiments.insert(Experiment("e1", app_id, "E1", None, 4))
        await w.acceptance.insert(test)
    assert await store.read.acceptance.get(app_id, "e1") == test
    test.name, test.description = "renamed", "why"
    async with store.write() as w:
        await w.acceptance.update(test)
    assert [t.name for t in await store.read.acceptance.list(app_id)] == ["renamed"]
    async with store.write() as w:
        await w.experiments.delete(app_id, "e1")
    assert await store.read.acceptance.get(app_id, "e1") is None


async def test_a_switchback_test_moves_once_and_goes_with_its_runs(store: Store) -> None:
    app_id, exe_id = await _app(store)
    test = SwitchbackTest("sb", app_id, "base", "cand", 5.0, 2, name="SB")
    async with store.write() as w:
        await w.switchback.insert(test)
    assert await store.read.switchback.get(app_id, "sb") == test
    assert await store.read.switchback.live() == []  # a draft without a start waits for one
    started = replace(test, status=SwitchbackStatus.STARTED, started_at=now())
    started.plan = Plan(now(), 3, 5.0, (Arm.CANDIDATE, Arm.BASELINE))
    async with store.write() as w:
        assert await w.switchback.start(started)
        assert not await w.switchback.start(started)  # no longer a draft: nothing moves
    assert await store.read.switchback.get(app_id, "sb") == started
    assert [t.id for t in await store.read.switchback.live()] == ["sb"]
    run = _run(app_id, exe_id, instance_id="cand", experiment_id="sb")
    await _insert(store, run)
    async with store.write() as w:
        await w.switchback.record_run(ServedRun(run.id, app_id, "sb", 0, Arm.CANDIDATE))
    assert await store.read.switchback.served(app_id, "sb") == {
        run.id: ServedRun(run.id, app_id, "sb", 0, Arm.CANDIDATE)
    }
    assert [r.id for r in await store.read.switchback.runs(app_id, "sb")] == [run.id]
    ended = replace(started, status=SwitchbackStatus.CANCELED, ended_at=now())
    async with store.write() as w:
        assert await w.switchback.end(ended)
        assert not await w.switchback.end(ended)
        assert await w.switchback.delete(app_id, "sb") == [run.id]
    assert await store.read.runs.get(run.id) is None
    assert await store.read.switchback.served(app_id, "sb") == {}
    assert await store.read.switchback.list(app_id) == []


async def test_what_uses_an_instance_is_found_by_any_of_its_roles(store: Store) -> None:
    """Deleting an instance asks these: a test's baseline or candidate (an ended test
    no longer counts), or any run group of an ensemble definition."""
    app_id, _ = await _app(store)
    canceled = SwitchbackStatus.CANCELED
    async with store.write() as w:
        await w.switchback.insert(SwitchbackTest("sb", app_id, "base", "cand", 5.0, 2))
        await w.switchback.insert(SwitchbackTest("gone", app_id, "x", "y", 5.0, 2, status=canceled))
        shadow = ShadowTest("sh", app_id, "SH", [Comparison("base", ("c1", "c2"))], 10)
        await w.shadow_tests.insert(shadow)
        ended = replace(shadow, id="old", comparisons=[Comparison("x", ("y",))])
        await w.shadow_tests.insert(replace(ended, status=ShadowStatus.COMPLETED))
        groups = [RunGroup("a", "base"), RunGroup("b", "c2")]
        await w.ensembles.insert(EnsembleDefinition("ens", app_id, groups, []))
    read = store.read
    assert [t.id for t in await read.switchback.using_instance(app_id, "cand")] == ["sb"]
    assert [t.id for t in await read.shadow_tests.using_instance(app_id, "base")] == ["sh"]
    assert [t.id for t in await read.shadow_tests.using_instance(app_id, "c2")] == ["sh"]
    assert await read.ensembles.using_instance(app_id, "c2") == ["ens"]
    for unused in ("x", "y", "c"):  # only ended tests name them; "c" is no instance ID
        assert await read.switchback.using_instance(app_id, unused) == []
        assert await read.shadow_tests.using_instance(app_id, unused) == []
        assert await read.ensembles.using_instance(app_id, unused) == []


async def test_an_experiment_keeps_its_queue_seed(store: Store) -> None:
    app_id, _ = await _app(store)
    async with store.write() as w:
        await w.experiments.insert(Experiment("seeded", app_id, "S", None, 2, seed=2**32 - 1))
        await w.experiments.insert(Experiment("unseeded", app_id, "U", None, 2))
    seeded = await store.read.experiments.get(app_id, "seeded")
    unseeded = await store.read.experiments.get(app_id, "unseeded")
    assert seeded is not None and seeded.seed == 2**32 - 1
    assert unseeded is not None and unseeded.seed is None
