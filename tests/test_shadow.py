"""Shadow tests in process: the trigger rule, the store's rules and the clock.

A real store in a temp folder; the run service is a fake that prepares and records
runs, so the rule itself is what is tested: which runs are shadowed, how often, with
which input, and that nothing here can fail the baseline run.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest

from orchestrator.errors import Invalid, NotFound
from orchestrator.experiments.shadow import ShadowTests
from orchestrator.experiments.shadow_runs import ShadowTrigger, share_input
from orchestrator.home import Home
from orchestrator.models import TIMESTAMP_FORMAT, App, EnvStatus, Executable, Run, now
from orchestrator.runs.service import RunRequest, RunService
from orchestrator.shadow_models import (
    SHADOW_TRANSITIONS,
    Comparison,
    ShadowStatus,
    ShadowTest,
    timestamp,
)
from orchestrator.store import Store
from orchestrator.store.migrations import MIGRATIONS
from tests.old_databases import write_old

_ids = itertools.count()
APP, EXE = "shadowapp", "e" * 64


class FakeRuns:
    """What the trigger asks of the run service: prepare (which may refuse) and queue."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.queued: list[Run] = []
        self.canceled: list[str] = []
        self.gate: asyncio.Event | None = None
        """When set, ``prepare`` waits for it (a slow preparation)."""

    async def prepare(self, req: RunRequest) -> Run:
        if self.gate is not None:
            await self.gate.wait()
        if req.instance_id == "gone":
            raise NotFound("instance 'gone' not found in app 'shadowapp'")
        return Run(
            f"run-{next(_ids):016d}",
            req.app_id,
            req.instance_id or "devint",
            EXE,
            name=req.name,
            priority=req.priority,
            options=dict(req.options),
            experiment_id=req.experiment_id,
            input_id=req.input_id,
        )

    async def create_many(self, runs: list[Run]) -> None:
        async with self.store.write() as w:
            await w.runs.insert_many(runs)
        self.queued += runs

    async def cancel_many(self, runs: list[Run]) -> None:
        self.canceled += [r.id for r in runs]


@pytest.fixture(params=["fresh", "migrated"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A new database, and one from the schema before the newest, brought forward."""
    if request.param == "migrated":
        write_old(tmp_path / "orch.db", len(MIGRATIONS) - 1)
    s = Store(tmp_path / "orch.db")
    await s.open()
    async with s.write() as w:
        await w.executables.insert_if_missing(
            Executable(EXE, 1, {}, "python", "py", EnvStatus.NONE), "blobs/x"
        )
        await w.apps.insert(App(APP, "App", executable_id=EXE))
    yield s
    await s.close()


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home")
    h.runs.mkdir(parents=True)
    return h


@pytest.fixture
def fake(store: Store) -> FakeRuns:
    return FakeRuns(store)


@pytest.fixture
async def tests(store: Store, home: Home, fake: FakeRuns) -> AsyncIterator[ShadowTests]:
    t = ShadowTests(store, home, cast(RunService, fake))
    yield t
    await t.close()


@pytest.fixture
def trigger(store: Store, home: Home, fake: FakeRuns, tests: ShadowTests) -> ShadowTrigger:
    return ShadowTrigger(store, home, cast(RunService, fake), tests)


def _stamp(seconds: float) -> str:
    return (datetime.now().astimezone() + timedelta(seconds=seconds)).strftime(TIMESTAMP_FORMAT)


async def _test(
    store: Store,
    status: ShadowStatus = ShadowStatus.STARTED,
    candidates: tuple[str, ...] = ("c1", "c2"),
    **kw: object,
) -> ShadowTest:
    test = ShadowTest(
        f"shadow-{next(_ids)}", APP, "t", [Comparison("base", candidates)], 10, status=status
    )
    for key, value in kw.items():
        setattr(test, key, value)
    async with store.write() as w:
        await w.shadow_tests.insert(test)
    return test


async def _baseline(store: Store, home: Home, instance: str = "base") -> tuple[RunRequest, Run]:
    """A user's run as the run service left it: its input in its own folder."""
    run = Run(f"run-{next(_ids):016d}", APP, instance, EXE, name="mine", created_at=now())
    folder = home.run_dir(run.id)
    folder.mkdir()
    (folder / "input").write_text('{"items": []}')
    run.input_path, run.input_size = str(folder / "input"), 13
    async with store.single() as w:
        await w.runs.insert(run)
    req = RunRequest(app_id=APP, instance_id=instance, input={"items": []}, options={"a": "1"})
    return req, run


async def _get(store: Store, test: ShadowTest) -> ShadowTest:
    got = await store.read.shadow_tests.get(APP, test.id)
    assert got is not None
    return got


async def test_a_baseline_run_triggers_one_run_per_candidate(
    store: Store, home: Home, fake: FakeRuns, trigger: ShadowTrigger
) -> None:
    test = await _test(store)
    req, run = await _baseline(store, home)
    await trigger.after(req, run)
    assert [(r.instance_id, r.experiment_id, r.options, r.priority) for r in fake.queued] == [
        ("c1", test.id, {"a": "1"}, 8),  # behind interactive runs (6), like experiment runs
        ("c2", test.id, {"a": "1"}, 8),
    ]
    for made in fake.queued:
        assert made.input_path == str(home.run_dir(made.id) / "input")
        assert os.stat(made.input_path).st_ino == os.stat(str(run.input_path)).st_ino
    links = await store.read.shadow_tests.links(APP, test.id)
    assert {(k.baseline_run_id, k.candidate_run_id) for k in links} == {
        (run.id, r.id) for r in fake.queued
    }
    assert (await _get(store, test)).shadowed_runs == 1
    ids = [r.id for r in await store.read.shadow_tests.runs(APP, test.id)]
    assert sorted(ids) == sorted([run.id, *(r.id for r in fake.queued)])


async def test_each_baseline_triggers_its_own_candidates(
    store: Store, home: Home, fake: FakeRuns, trigger: ShadowTrigger
) -> None:
    both = [Comparison("base", ("c1",)), Comparison("base2", ("c2", "c3"))]
    test = await _test(store, comparisons=both)
    req, run = await _baseline(store, home, "base2")
    await trigger.after(req, run)
    assert [r.instance_id for r in fake.queued] == ["c2", "c3"]
    assert (await _get(store, test)).comparisons == both


async def test_a_request_canceled_meanwhile_still_gets_its_candidates(
    store: Store, home: Home, fake: FakeRuns, trigger: ShadowTrigger
) -> None:
    await _test(store)
    req, run = await _baseline(store, home)
    fake.gate = asyncio.Event()
    request = asyncio.create_task(trigger.after(req, run))
    await asyncio.sleep(0.05)  # claimed, waiting in prepare
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    fake.gate.set()
    for _ in range(100):
        if len(fake.queued) == 2:
            break
        await asyncio.sleep(0.02)
    assert [r.instance_id for r in fake.queued] == ["c1", "c2"]


@pytest.mark.parametrize(
    "case", ["other instance", "for an experiment", "on a version", "draft", "completed"]
)
async def test_what_triggers_nothing(
    store: Store, home: Home, fake: FakeRuns, trigger: ShadowTrigger, case: str
) -> None:
    status = {"draft": ShadowStatus.DRAFT, "completed": ShadowStatus.COMPLETED}
    test = await _test(store, status.get(case, ShadowStatus.STARTED))
    req, run = await _baseline(store, home, "elsewhere" if case == "other instance" else "base")
    req.experiment_id = "exp-1" if case == "for an experiment" else None
    req.version_id = "v1" if case == "on a version" else None
    await trigger.after(req, run)
    assert fake.queued == [] and (await _get(store, test)).shadowed_runs == 0


async def test_maximum_runs_holds_under_concurrent_runs(
    store: Store, home: Home, fake: FakeRuns, trigger: ShadowTrigger
) -> None:
    test = await _test(store, candidates=("c1",), maximum_runs=3)
    baselines = [await _baseline(store, home) for _ in range(8)]
    await asyncio.gather(*(trigger.after(req, run) for req, run in baselines))
    after = await _get(store, test)
    assert after.shadowed_runs == 3 and len(fake.queued) == 3
    assert after.status == ShadowStatus.COMPLETED and after.ended_at is not None


async def test_a_candidate_that_cannot_be_made_is_recorded(
    store: Store, home: Home, fake: FakeRuns, trigger: ShadowTrigger
) -> None:
    test = await _test(store, candidates=("gone", "c1"))
    req, run = await _baseline(store, home)
    await trigger.after(req, run)  # does not raise
    links = {k.candidate_instance_id: k for k in await store.read.shadow_tests.links(APP, test.id)}
    assert links["gone"].candidate_run_id is None and "not found" in links["gone"].error
    assert links["c1"].candidate_run_id == fake.queued[0].id


async def test_an_end_time_passed_completes_instead_of_shadowing(
    store: Store, home: Home, fake: FakeRuns, trigger: ShadowTrigger
) -> None:
    test = await _test(store, end_time=_stamp(-1))
    req, run = await _baseline(store, home)
    await trigger.after(req, run)
    assert fake.queued == [] and (await _get(store, test)).status == ShadowStatus.COMPLETED


async def test_the_store_moves_a_test_only_along_the_table(store: Store) -> None:
    for source in ShadowStatus:
        for target in ShadowStatus:
            test = await _test(store, source)
            async with store.write() as w:
                moved = await w.shadow_tests.transition(APP, test.id, target)
            assert moved == (target in SHADOW_TRANSITIONS[source]), (source, target)
            assert (await _get(store, test)).status == (target if moved else source)


async def test_the_clock_starts_and_ends_tests_even_after_a_restart(
    store: Store, home: Home, fake: FakeRuns
) -> None:
    missed_start = await _test(store, ShadowStatus.DRAFT, start_time=_stamp(-5))
    missed_end = await _test(store, end_time=_stamp(-5))
    coming = await _test(store, ShadowStatus.DRAFT, start_time=_stamp(0.3), end_time=_stamp(0.6))
    by_hand = await _test(store, ShadowStatus.DRAFT)
    tests = ShadowTests(store, home, cast(RunService, fake))  # a daemon starting afresh
    await tests.resume()
    try:  # what was missed is right before anything is served; the rest follows its times
        assert (await _get(store, missed_start)).status == ShadowStatus.STARTED
        assert (await _get(store, missed_end)).status == ShadowStatus.COMPLETED
        assert (await _get(store, coming)).status == ShadowStatus.DRAFT
        for _ in range(200):
            if (await _get(store, coming)).status == ShadowStatus.COMPLETED:
                break
            await asyncio.sleep(0.02)
        assert (await _get(store, coming)).status == ShadowStatus.COMPLETED
        assert (await _get(store, by_hand)).status == ShadowStatus.DRAFT
    finally:
        await tests.close()


async def test_deleting_a_test_deletes_its_candidate_runs_only(
    store: Store, home: Home, fake: FakeRuns, trigger: ShadowTrigger, tests: ShadowTests
) -> None:
    test = await _test(store, candidates=("c1",))
    req, run = await _baseline(store, home)
    await trigger.after(req, run)
    async with store.write() as w:
        await w.shadow_tests.transition(APP, test.id, ShadowStatus.CANCELED)
        await w.runs.transition(fake.queued[0].id, fake.queued[0].status.CANCELED)
    await tests.delete(APP, test.id)
    assert await store.read.runs.get(fake.queued[0].id) is None
    assert not home.run_dir(fake.queued[0].id).exists()
    assert await store.read.runs.get(run.id) is not None and Path(str(run.input_path)).exists()


async def test_deleting_the_app_deletes_its_tests(store: Store) -> None:
    test = await _test(store)
    async with store.write() as w:
        await w.apps.delete(APP)
    assert await store.read.shadow_tests.get(APP, test.id) is None


def test_share_input_links_files_and_folders_and_shares_blobs(tmp_path: Path) -> None:
    base, mine = tmp_path / "base", tmp_path / "mine"
    (base / "input.d" / "sub").mkdir(parents=True)
    (base / "input.d" / "sub" / "a.csv").write_text("x")
    mine.mkdir()
    linked = share_input(str(base / "input.d"), base, mine)
    assert linked == str(mine / "input.d")
    assert (mine / "input.d" / "sub" / "a.csv").stat().st_ino == (
        base / "input.d" / "sub" / "a.csv"
    ).stat().st_ino
    blob = str(tmp_path / "blobs" / "abc")
    assert share_input(blob, base, mine) == blob
    assert share_input(None, base, mine) is None


def test_times_from_clients() -> None:
    assert timestamp("2030-01-02T03:04:05Z", "t") == "2030-01-02T03:04:05.000000Z"
    assert timestamp("2030-01-02T05:04:05+02:00", "t") == "2030-01-02T03:04:05.000000Z"
    local = datetime(2030, 1, 2, 3, 4, 5)
    assert timestamp(local.isoformat(), "t") == local.astimezone(UTC).strftime(TIMESTAMP_FORMAT)
    assert timestamp("0001-01-01T00:00:00Z", "t") is None and timestamp(None, "t") is None
    with pytest.raises(Invalid):
        timestamp("soon", "t")
