"""Switchback tests in process: the planner, and the lifecycle and routing on a real store
with an injected clock that steps through the units (no daemon, no waiting)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.errors import Conflict, Invalid, NotFound
from orchestrator.experiments.switchback import SwitchbackTests
from orchestrator.experiments.switchback_plan import draw, end_of, stamp, unit_at
from orchestrator.home import Home
from orchestrator.ids import new_id
from orchestrator.models import (
    App,
    EnvStatus,
    Executable,
    Experiment,
    Instance,
    Run,
    RunStatus,
    Version,
)
from orchestrator.runs.service import RunRequest
from orchestrator.store import Store
from orchestrator.switchback_models import Arm, SwitchbackStatus, SwitchbackTest

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
APP = "sb-app"
EXE = "a" * 64


# --- the planner ----------------------------------------------------------------------------
@pytest.mark.parametrize("units", [1, 2, 7, 10, 1000])
def test_a_plan_is_balanced(units: int) -> None:
    for seed in range(20):
        counts = Counter(draw(seed, units, 5, T0).arms)
        assert sum(counts.values()) == units
        assert abs(counts[Arm.BASELINE] - counts[Arm.CANDIDATE]) == units % 2


def test_the_seed_reproduces_the_plan_and_seeds_differ() -> None:
    assert draw(42, 20, 5, T0) == draw(42, 20, 5, T0)
    orders = {draw(seed, 20, 5, T0).arms for seed in range(10)}
    assert len(orders) > 5, "the order is drawn, not fixed"


def test_units_follow_the_clock() -> None:
    plan = draw(1, 3, 2, T0)
    assert plan.start == stamp(T0) and end_of(plan) == T0 + timedelta(minutes=6)
    assert unit_at(plan, T0 - timedelta(microseconds=1)) is None
    assert unit_at(plan, T0) == 0
    assert unit_at(plan, T0 + timedelta(minutes=2) - timedelta(microseconds=1)) == 0
    assert unit_at(plan, T0 + timedelta(minutes=2)) == 1
    assert unit_at(plan, T0 + timedelta(minutes=5, seconds=59)) == 2
    assert unit_at(plan, T0 + timedelta(minutes=6)) is None


def test_fractional_units() -> None:
    plan = draw(1, 4, 1.5, T0)
    assert unit_at(plan, T0 + timedelta(seconds=89)) == 0
    assert unit_at(plan, T0 + timedelta(seconds=90)) == 1


# --- the service, on a real store -----------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        return self.at

    def step(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store(tmp_path / "orch.db")
    await s.open()
    async with s.write() as w:
        await w.executables.insert_if_missing(
            Executable(EXE, 1, {}, "python", "py", EnvStatus.NONE), "blobs/x"
        )
        await w.apps.insert(App(APP, "App", executable_id=EXE))
        await w.versions.insert(Version("v1", APP, "v1", EXE))
        for instance_id in ("base", "cand", "other"):
            await w.instances.insert(Instance(instance_id, APP, "v1", instance_id))
    yield s
    await s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tests(store: Store, clock: Clock, tmp_path: Path) -> SwitchbackTests:
    return SwitchbackTests(store, Home(tmp_path), clock, seeds=lambda: 7)


Plain = Callable[[RunRequest], Awaitable[Run]]


def plain_on(store: Store) -> Plain:
    """The run service's ``create_plain`` as far as routing sees it: a row, as asked."""

    async def plain(req: RunRequest) -> Run:
        run = Run(
            new_id("run"),
            req.app_id,
            req.instance_id or "base",
            EXE,
            status=RunStatus.QUEUED,
            experiment_id=req.experiment_id,
        )
        async with store.single() as w:
            await w.runs.insert(run)
        return run

    return plain


async def create_run(tests: SwitchbackTests, store: Store, instance: str | None = "base") -> Run:
    req = RunRequest(app_id=APP, instance_id=instance)
    plain = plain_on(store)
    return await tests.serve(req, plain) or await plain(req)


def new_test(units: int = 4, minutes: float = 10, **kw: object) -> SwitchbackTest:
    return SwitchbackTest("sb1", APP, "base", "cand", minutes, units, **kw)  # type: ignore[arg-type]


async def test_runs_on_the_baseline_go_to_the_arm_of_each_unit(
    tests: SwitchbackTests, store: Store, clock: Clock
) -> None:
    made = await tests.create(new_test())
    assert made.status == SwitchbackStatus.DRAFT and made.plan is None
    assert (await create_run(tests, store)).instance_id == "base"  # a draft routes nothing
    started = await tests.start(APP, "sb1")
    assert started.plan is not None and started.plan.seed == 7
    assert started.plan.arms == draw(7, 4, 10, T0).arms
    for unit, arm in enumerate(started.plan.arms):
        clock.at = T0 + timedelta(minutes=10 * unit + 5)
        run = await create_run(tests, store)
        assert run.instance_id == started.instance_of(arm) and run.experiment_id == "sb1"
        other = await create_run(tests, store, "other")
        assert other.instance_id == "other" and other.experiment_id is None
    listed = await tests.runs(APP, "sb1")
    assert [(r.served.unit_index, r.served.arm) for r in listed if r.served] == list(
        enumerate(started.plan.arms)
    )
    clock.at = T0 + timedelta(minutes=40)
    assert (await create_run(tests, store)).instance_id == "base"  # over: runs go as asked
    done = await tests.get(APP, "sb1")
    assert done.status == SwitchbackStatus.COMPLETED and done.ended_at == stamp(clock.at)


async def test_the_default_instance_is_covered_when_it_is_the_baseline(
    tests: SwitchbackTests, store: Store
) -> None:
    app = await store.read.apps.get(APP)
    assert app is not None
    async with store.write() as w:
        await w.apps.update(replace(app, default_instance_id="base"))
    await tests.create(new_test(units=2))
    plan = (await tests.start(APP, "sb1")).plan
    assert plan is not None
    run = await create_run(tests, store, None)
    assert run.experiment_id == "sb1" and run.instance_id in ("base", "cand")


async def test_stop_ends_routing(tests: SwitchbackTests, store: Store, clock: Clock) -> None:
    await tests.create(new_test())
    with pytest.raises(Conflict, match="not started"):
        await tests.stop(APP, "sb1", "complete")
    await tests.start(APP, "sb1")
    with pytest.raises(Conflict, match="not a draft"):
        await tests.start(APP, "sb1")
    with pytest.raises(Invalid, match="intent"):
        await tests.stop(APP, "sb1", "pause")
    clock.step(minutes=3)
    stopped = await tests.stop(APP, "sb1", "cancel")
    assert stopped.status == SwitchbackStatus.CANCELED and stopped.ended_at == stamp(clock.at)
    run = await create_run(tests, store)
    assert run.instance_id == "base" and run.experiment_id is None
    assert (await tests.get(APP, "sb1")).status == SwitchbackStatus.CANCELED


async def test_stop_with_intent_complete(tests: SwitchbackTests) -> None:
    await tests.create(new_test())
    await tests.start(APP, "sb1")
    assert (await tests.stop(APP, "sb1", "complete")).status == SwitchbackStatus.COMPLETED


async def test_a_scheduled_start_starts_by_itself(
    tests: SwitchbackTests, store: Store, clock: Clock
) -> None:
    at = T0 + timedelta(minutes=30)
    await tests.create(new_test(units=2, scheduled_start=at.isoformat()))
    assert (await create_run(tests, store)).experiment_id is None
    clock.at = at + timedelta(minutes=12)  # in the second unit
    run = await create_run(tests, store)
    t = await tests.get(APP, "sb1")
    assert t.status == SwitchbackStatus.STARTED and t.started_at == stamp(at)
    assert t.plan is not None and run.instance_id == t.instance_of(t.plan.arms[1])
    served = (await tests.runs(APP, "sb1"))[0].served
    assert served is not None and served.unit_index == 1


async def test_rules_of_creation(tests: SwitchbackTests) -> None:
    with pytest.raises(Invalid, match="differ"):
        await tests.create(replace(new_test(), candidate_instance_id="base"))
    with pytest.raises(Invalid, match="units"):
        await tests.create(new_test(units=0))
    with pytest.raises(Invalid, match="unit_duration_minutes"):
        await tests.create(new_test(minutes=0.5))
    with pytest.raises(NotFound, match="nope"):
        await tests.create(replace(new_test(), candidate_instance_id="nope"))
    past = (T0 - timedelta(hours=1)).isoformat()
    with pytest.raises(Invalid, match="past"):
        await tests.create(new_test(scheduled_start=past))
    await tests.create(new_test())
    with pytest.raises(Conflict, match="already exists"):
        await tests.create(new_test())


async def test_the_id_of_a_batch_experiment_is_taken(tests: SwitchbackTests, store: Store) -> None:
    async with store.write() as w:  # their runs would share an experiment_id
        await w.experiments.insert(Experiment("b1", APP, "B1", None, 1))
    with pytest.raises(Conflict, match="experiment 'b1' already exists"):
        await tests.create(replace(new_test(), id="b1"))


async def test_one_live_test_per_baseline(tests: SwitchbackTests) -> None:
    await tests.create(new_test())
    await tests.start(APP, "sb1")
    await tests.create(replace(new_test(), id="sb2"))
    with pytest.raises(Conflict, match="already the baseline"):
        await tests.start(APP, "sb2")
    await tests.stop(APP, "sb1", "complete")
    assert (await tests.start(APP, "sb2")).status == SwitchbackStatus.STARTED


async def test_delete_takes_the_runs(tests: SwitchbackTests, store: Store) -> None:
    await tests.create(new_test())
    await tests.start(APP, "sb1")
    run = await create_run(tests, store)
    with pytest.raises(Conflict, match="stop it first"):
        await tests.delete(APP, "sb1")
    await tests.stop(APP, "sb1", "complete")
    with pytest.raises(Conflict, match="has not finished"):
        await tests.delete(APP, "sb1")
    async with store.single() as w:
        await w.runs.transition(run.id, RunStatus.CANCELED)
    await tests.delete(APP, "sb1")
    assert await store.read.runs.get(run.id) is None
    with pytest.raises(NotFound):
        await tests.get(APP, "sb1")


async def test_a_restarted_daemon_routes_again(
    tests: SwitchbackTests, store: Store, clock: Clock, tmp_path: Path
) -> None:
    await tests.create(new_test())
    plan = (await tests.start(APP, "sb1")).plan
    again = SwitchbackTests(store, Home(tmp_path), clock, seeds=lambda: 99)
    assert (await create_run(again, store)).experiment_id is None  # not resumed yet
    await again.resume()
    run = await create_run(again, store)
    assert plan is not None
    assert run.instance_id == (await again.get(APP, "sb1")).instance_of(plan.arms[0])


async def test_a_deleted_candidate_cancels_the_test(
    tests: SwitchbackTests, store: Store, clock: Clock
) -> None:
    await tests.create(new_test(units=2))
    plan = (await tests.start(APP, "sb1")).plan
    assert plan is not None
    async with store.write() as w:
        await w.instances.delete(APP, "cand")
    clock.at = T0 + timedelta(minutes=10 * plan.arms.index(Arm.CANDIDATE))
    run = await create_run(tests, store)
    assert run.instance_id == "base" and run.experiment_id is None
    assert (await tests.get(APP, "sb1")).status == SwitchbackStatus.CANCELED


async def test_the_summary_sums_up_each_arm(
    tests: SwitchbackTests, store: Store, clock: Clock
) -> None:
    await tests.create(new_test(units=2))
    plan = (await tests.start(APP, "sb1")).plan
    assert plan is not None
    value = {Arm.BASELINE: 100.0, Arm.CANDIDATE: 90.0}
    for unit, arm in enumerate(plan.arms):
        clock.at = T0 + timedelta(minutes=10 * unit + 1)
        for extra in (0.0, 2.0):
            run = await create_run(tests, store)
            stats = {"result": {"value": value[arm] + extra}}
            for status in (RunStatus.RUNNING, RunStatus.SUCCEEDED):
                async with store.single() as w:
                    assert await w.runs.transition(run.id, status, statistics=stats)
    await create_run(tests, store)  # still queued: counted, not measured
    arms = dict(await tests.summary(APP, "sb1"))
    assert arms[Arm.BASELINE].target == "base" and arms[Arm.CANDIDATE].target == "cand"
    for arm, summary in arms.items():
        assert summary.succeeded == 2
        assert summary.metrics["result.value"].mean == value[arm] + 1
    current = plan.arms[1]
    assert arms[current].runs == 3 and arms[current].unfinished == 1
