"""Switchback tests: while one runs, runs made on its baseline instance are served by the
arm its plan gives the current time unit.

Lifecycle: created as a draft; started by ``start`` (or by itself at its scheduled
start), when the plan is drawn with a recorded seed; it ends ``completed`` when its
last unit has elapsed or it is stopped with intent ``complete``, ``canceled`` when
stopped with intent ``cancel``. Time is the injected clock's, and the status follows
it on every read and every routed run, so nothing depends on a timer firing.

The runs it routes are ordinary runs (listed, cancellable, deleted with the test),
linked by ``experiment_id`` = the test's id, with the unit and arm recorded beside
them. The daemon keeps the ids of the tests that can route (``_live``) in memory: an
app without one costs a run nothing but a dictionary lookup.
"""

from __future__ import annotations

import builtins
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

from orchestrator import trees
from orchestrator.errors import Conflict, Invalid, NotFound
from orchestrator.experiments.analysis import experiment_facts
from orchestrator.experiments.summary import TargetSummary, summarize_target
from orchestrator.experiments.switchback_plan import (
    Clock,
    draw,
    end_of,
    moment,
    stamp,
    unit_at,
    utc_now,
)
from orchestrator.home import Home
from orchestrator.ids import check_label, new_id, validate_child_id
from orchestrator.models import Run
from orchestrator.registry.lookup import require_app, require_instances
from orchestrator.registry.resolve import resolve
from orchestrator.runs.service import RunRequest
from orchestrator.store import Store
from orchestrator.switchback_models import Arm, ServedRun, SwitchbackStatus, SwitchbackTest

log = logging.getLogger("orch.switchback")

MAX_UNITS = 1000
UNIT_MINUTES = (1.0, 10080.0)
"""The SDK's bounds: 1 to 1000 units of 1 minute to 1 week."""
START_GRACE = timedelta(minutes=1)
"""How far in the past a scheduled start may be (the client's clock, the trip here)."""
STOP_INTENTS = {"complete": SwitchbackStatus.COMPLETED, "cancel": SwitchbackStatus.CANCELED}


@dataclass(frozen=True)
class RoutedRun:
    """A run of a test with the unit and arm that served it (``None``: not recorded)."""

    run: Run
    served: ServedRun | None


class SwitchbackTests:
    def __init__(
        self,
        store: Store,
        home: Home,
        clock: Clock = utc_now,
        seeds: Callable[[], int] | None = None,
    ) -> None:
        self.store, self.home, self.clock = store, home, clock
        self.seeds = seeds or (lambda: random.SystemRandom().randrange(2**31))
        self._live: dict[str, set[str]] = {}
        """App id → ids of its tests that route runs now or will (scheduled drafts)."""

    async def create(self, t: SwitchbackTest) -> SwitchbackTest:
        t.id = validate_child_id(t.id or new_id("switchback"), "switchback test")
        t.name = t.name or t.id
        check_label("switchback test", t.name, t.description)
        await require_app(self.store.read, t.app_id)
        _check_units(t.units, t.unit_minutes)
        t.baseline_instance_id = await self._instance(t.app_id, t.baseline_instance_id)
        t.candidate_instance_id = await self._instance(t.app_id, t.candidate_instance_id)
        if t.baseline_instance_id == t.candidate_instance_id:
            raise Invalid("the baseline and candidate instances must differ")
        if t.scheduled_start is not None:
            t.scheduled_start = self._check_start(t.scheduled_start)
            await self._check_free(t)
        if await self.store.read.switchback.get(t.app_id, t.id) is not None:
            raise Conflict(f"switchback test {t.id!r} already exists in app {t.app_id!r}")
        if await self.store.read.experiments.get(t.app_id, t.id) is not None:
            raise Conflict(f"experiment {t.id!r} already exists in app {t.app_id!r}")
        t.status, t.plan = SwitchbackStatus.DRAFT, None
        t.created_at = t.updated_at = stamp(self.clock())
        async with self.store.write() as w:
            await require_instances(w, t.app_id, [t.baseline_instance_id, t.candidate_instance_id])
            await w.switchback.insert(t)
        if t.scheduled_start is not None:
            self._live.setdefault(t.app_id, set()).add(t.id)
        return t

    async def _instance(self, app_id: str, instance_id: str) -> str:
        """The instance's own id (``latest`` is devint); 404 when there is none."""
        if not instance_id:
            raise Invalid("the comparison needs a baseline and a candidate instance")
        return (await resolve(self.store.read, app_id, instance_id, None)).instance_id

    def _check_start(self, text: str) -> str:
        try:
            at = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise Invalid(f"start must be an ISO 8601 time, got {text!r}") from None
        at = at if at.tzinfo else at.replace(tzinfo=UTC)  # no zone: UTC
        if at < self.clock() - START_GRACE:
            raise Invalid(f"start {text} is in the past")
        return stamp(at)

    async def _check_free(self, t: SwitchbackTest) -> None:
        """One live test per baseline instance: a run must have one place to go."""
        for other in await self._live_tests(t.app_id):
            if other.id != t.id and other.baseline_instance_id == t.baseline_instance_id:
                raise Conflict(
                    f"instance {t.baseline_instance_id!r} is already the baseline of"
                    f" switchback test {other.id!r} ({other.status.value})"
                )

    async def get(self, app_id: str, test_id: str) -> SwitchbackTest:
        t = await self.store.read.switchback.get(app_id, test_id)
        if t is None:
            await require_app(self.store.read, app_id)
            raise NotFound(f"switchback test {test_id!r} not found in app {app_id!r}")
        return await self._advance(t)

    async def list(self, app_id: str) -> builtins.list[SwitchbackTest]:
        await require_app(self.store.read, app_id)
        return [await self._advance(t) for t in await self.store.read.switchback.list(app_id)]

    async def update(
        self, app_id: str, test_id: str, name: str | None, description: str | None
    ) -> SwitchbackTest:
        t = await self.get(app_id, test_id)
        check_label("switchback test", name, description)
        t.name = name or t.name
        t.description = t.description if description is None else description
        t.updated_at = stamp(self.clock())
        async with self.store.write() as w:
            await w.switchback.relabel(t)
        return t

    async def start(self, app_id: str, test_id: str) -> SwitchbackTest:
        """Draw the plan and start routing now (a scheduled start is brought forward)."""
        t = await self.get(app_id, test_id)
        if t.status != SwitchbackStatus.DRAFT:
            raise Conflict(f"switchback test {test_id!r} is {t.status.value}, not a draft")
        await self._instance(app_id, t.baseline_instance_id)  # both must still exist
        await self._instance(app_id, t.candidate_instance_id)
        await self._check_free(t)
        await self._begin(t, self.clock())
        return t

    async def stop(self, app_id: str, test_id: str, intent: str) -> SwitchbackTest:
        if intent not in STOP_INTENTS:
            raise Invalid(f"intent must be one of {', '.join(STOP_INTENTS)}, got {intent!r}")
        t = await self.get(app_id, test_id)
        if t.status != SwitchbackStatus.STARTED:
            raise Conflict(f"switchback test {test_id!r} is {t.status.value}, not started")
        await self._end(t, STOP_INTENTS[intent], self.clock())
        return t

    async def delete(self, app_id: str, test_id: str) -> None:
        """The test with its runs, once nothing of it runs any more."""
        t = await self.get(app_id, test_id)
        if t.status == SwitchbackStatus.STARTED:
            raise Conflict(f"switchback test {test_id!r} is running; stop it first")
        busy = [r.id for r in await self._unfinished(app_id, test_id)]
        if busy:
            raise Conflict(f"run {busy[0]!r} of switchback test {test_id!r} has not finished")
        async with self.store.write() as w:
            run_ids = await w.switchback.delete(app_id, test_id)
        self._forget(t)
        folders = [self.home.run_dir(run_id) for run_id in run_ids]
        await anyio.to_thread.run_sync(_remove_all, folders)

    async def _unfinished(self, app_id: str, test_id: str) -> builtins.list[Run]:
        runs = await self.store.read.switchback.runs(app_id, test_id)
        return [r for r in runs if not r.status.finished]

    async def runs(self, app_id: str, test_id: str) -> builtins.list[RoutedRun]:
        await self.get(app_id, test_id)
        runs = await self.store.read.switchback.runs(app_id, test_id)
        served = await self.store.read.switchback.served(app_id, test_id)
        return [RoutedRun(r, served.get(r.id)) for r in runs]

    async def summary(self, app_id: str, test_id: str) -> builtins.list[tuple[Arm, TargetSummary]]:
        """Each arm's runs as a batch experiment sums up a target: counts by outcome, and
        the distribution of every metric over the succeeded ones."""
        t = await self.get(app_id, test_id)
        facts = await self.store.heavy.call(lambda r: experiment_facts(r, app_id, test_id))
        return [
            (arm, summarize_target(target, [f for f in facts if f.target == target]))
            for arm, target in ((a, t.instance_of(a)) for a in Arm)
        ]

    async def serve(
        self, req: RunRequest, plain: Callable[[RunRequest], Awaitable[Run]]
    ) -> Run | None:
        """A user run on the baseline of a running test, served by the current unit's arm;
        ``None``: no test covers it, the caller makes it as asked."""
        if req.experiment_id or req.version_id or not self._live.get(req.app_id):
            return None
        target = await resolve(self.store.read, req.app_id, req.instance_id, None)
        for t in await self._live_tests(req.app_id):
            if t.status != SwitchbackStatus.STARTED or t.baseline_instance_id != target.instance_id:
                continue
            assert t.plan is not None
            index = unit_at(t.plan, self.clock())
            if index is None:
                return None
            arm = t.plan.arms[index]
            if arm == Arm.CANDIDATE and not await self._still_there(t):
                return None
            run = await plain(
                replace(
                    req,
                    instance_id=t.instance_of(arm),
                    experiment_id=t.id,
                    experiment_type="switchback",
                )
            )
            async with self.store.write() as w:
                await w.switchback.record_run(ServedRun(run.id, req.app_id, t.id, index, arm))
            return run
        return None

    async def _still_there(self, t: SwitchbackTest) -> bool:
        """A deleted candidate cancels the test: the baseline's runs must not fail for it."""
        try:
            await resolve(self.store.read, t.app_id, t.candidate_instance_id, None)
        except NotFound:
            log.warning("switchback test %s/%s: candidate instance gone", t.app_id, t.id)
            await self._end(t, SwitchbackStatus.CANCELED, self.clock())
            return False
        return True

    async def _live_tests(self, app_id: str) -> builtins.list[SwitchbackTest]:
        """The app's tests that can route, brought up to the clock (ended ones dropped)."""
        found = []
        for test_id in sorted(self._live.get(app_id, ())):
            t = await self.store.read.switchback.get(app_id, test_id)
            if t is not None:
                t = await self._advance(t)
            if t is None or not t.status.live:
                self._live.get(app_id, set()).discard(test_id)
                continue
            found.append(t)
        return found

    async def _advance(self, t: SwitchbackTest) -> SwitchbackTest:
        """Apply what the clock says happened: a scheduled start, the last unit's end."""
        now = self.clock()
        start = moment(t.scheduled_start) if t.scheduled_start else None
        if t.status == SwitchbackStatus.DRAFT and start is not None and start <= now:
            await self._begin(t, start)
        end = end_of(t.plan) if t.plan is not None else None
        if t.status == SwitchbackStatus.STARTED and end is not None and end <= now:
            await self._end(t, SwitchbackStatus.COMPLETED, end)
        return t

    async def _begin(self, t: SwitchbackTest, start: datetime) -> None:
        t.plan = draw(self.seeds(), t.units, t.unit_minutes, start)
        t.status, t.started_at = SwitchbackStatus.STARTED, stamp(start)
        t.updated_at = stamp(self.clock())
        async with self.store.write() as w:
            moved = await w.switchback.start(t)
        if not moved:  # started meanwhile by another caller: theirs is the plan
            fresh = await self.store.read.switchback.get(t.app_id, t.id)
            if fresh is not None:
                t.__dict__.update(fresh.__dict__)
            return
        self._live.setdefault(t.app_id, set()).add(t.id)
        log.info("switchback test %s/%s started (seed %d)", t.app_id, t.id, t.plan.seed)

    async def _end(self, t: SwitchbackTest, status: SwitchbackStatus, at: datetime) -> None:
        t.status, t.ended_at, t.updated_at = status, stamp(at), stamp(self.clock())
        async with self.store.write() as w:
            moved = await w.switchback.end(t)
        self._forget(t)
        if moved:
            log.info("switchback test %s/%s %s", t.app_id, t.id, status.value)

    def _forget(self, t: SwitchbackTest) -> None:
        self._live.get(t.app_id, set()).discard(t.id)

    async def resume(self) -> None:
        """At start: know again which tests can route (their status follows on first use)."""
        for t in await self.store.read.switchback.live():
            self._live.setdefault(t.app_id, set()).add(t.id)


def _check_units(units: int, unit_minutes: float) -> None:
    if not 1 <= units <= MAX_UNITS:
        raise Invalid(f"units must be between 1 and {MAX_UNITS}, got {units}")
    low, high = UNIT_MINUTES
    if not math.isfinite(unit_minutes) or not low <= unit_minutes <= high:
        raise Invalid(f"unit_duration_minutes must be between {low:g} and {high:g}")


def _remove_all(folders: builtins.list[Path]) -> None:
    for folder in folders:
        trees.remove(folder)
