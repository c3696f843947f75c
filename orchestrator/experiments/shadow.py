"""Shadow tests: their lifecycle (draft, started, completed or canceled) and their clock.

A test is made a draft; it starts by hand (``start``) or at its start time, and ends
when ``maximum_runs`` baseline runs have been shadowed (``shadow_runs``), at its end
time, or when stopped (complete or cancel). The state lives in the store; the only
thing in memory is one timer per test waiting for a start or an end time, rebuilt by
``resume`` after a restart, so a time that passed while the daemon was down takes
effect as it starts. Runs made by a test are ordinary runs: deleting the test deletes
its candidate runs, never the user's baseline runs.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio

from orchestrator import trees
from orchestrator.errors import Conflict, Invalid, NotFound
from orchestrator.home import Home
from orchestrator.ids import check_label, new_id, relabel, validate_child_id
from orchestrator.models import Run, epoch, now
from orchestrator.registry.lookup import require_app, require_instances
from orchestrator.registry.resolve import resolve
from orchestrator.runs.service import RunService
from orchestrator.shadow_models import (
    MAX_CANDIDATES,
    MAX_RUNS,
    Comparison,
    ShadowLink,
    ShadowStatus,
    ShadowTest,
    StopIntent,
    timestamp,
)
from orchestrator.store import Store

log = logging.getLogger("orch.shadow")
Key = tuple[str, str]
LONGEST_SLEEP = 86400.0
"""A timer wakes at least daily to re-read the clock (and never overflows the loop's)."""


@dataclass
class ShadowView:
    """A test with its runs (baseline and candidate) and every candidate link."""

    test: ShadowTest
    runs: list[Run]
    links: list[ShadowLink]


class ShadowTests:
    def __init__(self, store: Store, home: Home, runs: RunService) -> None:
        self.store, self.home, self.runs = store, home, runs
        self._timers: dict[Key, asyncio.Task[None]] = {}

    async def create(self, t: ShadowTest) -> ShadowTest:
        """Check and write a draft; a start time already passed starts it at once."""
        t.id = validate_child_id(t.id or new_id("shadow"), "shadow test")
        t.name = t.name or t.id
        check_label("shadow test", t.name, t.description)
        await require_app(self.store.read, t.app_id)
        await self._check_free(t.app_id, t.id)
        t.comparisons = await self._comparisons(t.app_id, t.comparisons)
        _check_events(t)
        t.status, t.shadowed_runs = ShadowStatus.DRAFT, 0
        async with self.store.write() as w:
            await require_instances(w, t.app_id, [i for c in t.comparisons for i in c.instance_ids])
            await w.shadow_tests.insert(t)
        if t.start_time is not None and t.start_time <= now():
            return await self.start(t.app_id, t.id)
        self._schedule(t)
        return t

    async def _check_free(self, app_id: str, test_id: str) -> None:
        """A test's runs carry its ID as their experiment ID: it must name nothing else."""
        if await self.store.read.shadow_tests.get(app_id, test_id) is not None:
            raise Conflict(f"shadow test {test_id!r} already exists in app {app_id!r}")
        if await self.store.read.experiments.get(app_id, test_id) is not None:
            raise Conflict(f"experiment {test_id!r} already exists in app {app_id!r}")

    async def _comparisons(
        self, app_id: str, given: builtins.list[Comparison]
    ) -> builtins.list[Comparison]:
        """Every instance must exist; IDs are stored as runs record them (``latest`` and
        ``default`` resolved)."""
        if not given:
            raise Invalid("a shadow test needs at least one comparison (a baseline instance)")
        out: list[Comparison] = []
        for c in given:
            baseline = (await resolve(self.store.read, app_id, c.baseline_instance_id)).instance_id
            if not c.candidate_instance_ids:
                raise Invalid(f"baseline instance {baseline!r} has no candidate instances")
            candidates = [
                (await resolve(self.store.read, app_id, i)).instance_id
                for i in c.candidate_instance_ids
            ]
            if baseline in candidates or len(set(candidates)) != len(candidates):
                raise Invalid(
                    f"the candidates of {baseline!r} must be distinct and not the baseline"
                )
            if baseline in [o.baseline_instance_id for o in out]:
                raise Invalid(f"baseline instance {baseline!r} is given twice")
            out.append(Comparison(baseline, tuple(candidates)))
        if (total := sum(len(c.candidate_instance_ids) for c in out)) > MAX_CANDIDATES:
            raise Invalid(f"{total} candidate instances; a shadow test takes {MAX_CANDIDATES}")
        return out

    async def get(self, app_id: str, test_id: str) -> ShadowTest:
        t = await self.store.read.shadow_tests.get(app_id, test_id)
        if t is None:
            await require_app(self.store.read, app_id)
            raise NotFound(f"shadow test {test_id!r} not found in app {app_id!r}")
        return t

    async def list(self, app_id: str) -> builtins.list[ShadowTest]:
        await require_app(self.store.read, app_id)
        return await self.store.read.shadow_tests.list(app_id)

    async def links(self, app_id: str, test_id: str) -> builtins.list[ShadowLink]:
        return await self.store.read.shadow_tests.links(app_id, test_id)

    async def view(self, app_id: str, test_id: str) -> ShadowView:
        t = await self.get(app_id, test_id)
        read = self.store.read.shadow_tests
        return ShadowView(t, await read.runs(app_id, test_id), await read.links(app_id, test_id))

    async def update(
        self, app_id: str, test_id: str, name: str | None, description: str | None
    ) -> ShadowTest:
        t = await self.get(app_id, test_id)
        relabel("shadow test", t, name, description)
        async with self.store.write() as w:
            await w.shadow_tests.relabel(t)
        return t

    async def start(self, app_id: str, test_id: str) -> ShadowTest:
        """draft -> started, now (a start time still ahead is overtaken)."""
        t = await self.get(app_id, test_id)
        if t.status != ShadowStatus.DRAFT:
            raise Conflict(f"shadow test {test_id!r} is {t.status.value}, not a draft")
        if t.end_time is not None and t.end_time <= now():
            raise Conflict(f"shadow test {test_id!r} ended at {t.end_time} before it started")
        await self._move(t, ShadowStatus.STARTED)
        return await self.get(app_id, test_id)

    async def stop(self, app_id: str, test_id: str, intent: StopIntent) -> ShadowTest:
        """started -> completed or canceled; a cancel also cancels its unfinished runs."""
        t = await self.get(app_id, test_id)
        if t.status != ShadowStatus.STARTED:
            raise Conflict(f"shadow test {test_id!r} is {t.status.value}, not started")
        await self._move(t, intent.status)
        if intent == StopIntent.CANCEL:
            left = [r for r in await self._candidate_runs(t) if not r.status.finished]
            if left:
                await self.runs.cancel_many(left)
        return await self.get(app_id, test_id)

    async def end(self, t: ShadowTest) -> None:
        """started -> completed: the end time has come (a no-op if it ended otherwise)."""
        await self._move(t, ShadowStatus.COMPLETED)

    async def _move(self, t: ShadowTest, to: ShadowStatus) -> None:
        async with self.store.write() as w:
            moved = await w.shadow_tests.transition(t.app_id, t.id, to)
        if not moved:
            current = await self.store.read.shadow_tests.get(t.app_id, t.id)
            if to == ShadowStatus.COMPLETED and current is not None and current.status.ended:
                return
            raise Conflict(f"shadow test {t.id!r} changed meanwhile; try again")
        log.info("shadow test %s/%s %s", t.app_id, t.id, to.value)
        t.status = to
        self._schedule(t)

    async def delete(self, app_id: str, test_id: str) -> None:
        """The test and the candidate runs it made; baseline runs are the user's and stay."""
        t = await self.get(app_id, test_id)
        if t.status == ShadowStatus.STARTED:
            raise Conflict(f"shadow test {test_id!r} is started; stop it first")
        made = await self._candidate_runs(t)
        if busy := [r.id for r in made if not r.status.finished]:
            raise Conflict(
                f"shadow test {test_id!r} has {len(busy)} runs queued or running;"
                " wait for them or cancel them first"
            )
        self._cancel_timer((app_id, test_id))
        async with self.store.write() as w:
            for run in made:
                await w.runs.delete(run.id)
            await w.shadow_tests.delete(app_id, test_id)
        folders = [self.home.run_dir(r.id) for r in made]
        await anyio.to_thread.run_sync(_remove_all, folders)

    async def _candidate_runs(self, t: ShadowTest) -> builtins.list[Run]:
        links = await self.store.read.shadow_tests.links(t.app_id, t.id)
        made = {k.candidate_run_id for k in links if k.candidate_run_id}
        return [r for r in await self.store.read.shadow_tests.runs(t.app_id, t.id) if r.id in made]

    # --- the clock ------------------------------------------------------------------------
    async def resume(self) -> None:
        """At start: a start or end time that passed while the daemon was down takes
        effect before anything is served; timers wait for the times still ahead."""
        for t in await self.store.read.shadow_tests.with_status(ShadowStatus.DRAFT):
            if t.start_time and t.start_time <= now():
                await self._start_due((t.app_id, t.id))  # and ends it if that time passed too
            else:
                self._schedule(t)
        for t in await self.store.read.shadow_tests.with_status(ShadowStatus.STARTED):
            if t.end_time and t.end_time <= now():
                await self.end(t)
            else:
                self._schedule(t)

    async def close(self) -> None:
        tasks = list(self._timers.values())
        self._timers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _schedule(self, t: ShadowTest) -> None:
        key = (t.app_id, t.id)
        self._cancel_timer(key)
        if t.status == ShadowStatus.DRAFT and t.start_time:
            at, action = t.start_time, self._start_due
        elif t.status == ShadowStatus.STARTED and t.end_time:
            at, action = t.end_time, self._end_due
        else:
            return
        self._timers[key] = asyncio.create_task(self._at(key, at, action))

    def _cancel_timer(self, key: Key) -> None:
        task = self._timers.pop(key, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _at(self, key: Key, stamp: str, action: Callable[[Key], Awaitable[None]]) -> None:
        while True:
            left = (epoch(stamp) or 0.0) - time.time()
            if left <= 0:
                break
            await asyncio.sleep(min(left, LONGEST_SLEEP))
        if self._timers.get(key) is asyncio.current_task():
            del self._timers[key]
        try:
            await action(key)
        except Exception:  # a timer must not die silently: the next read still shows state
            log.exception("shadow test %s/%s: timer", *key)

    async def _start_due(self, key: Key) -> None:
        t = await self.store.read.shadow_tests.get(*key)
        if t is None or t.status != ShadowStatus.DRAFT:
            return
        await self._move(t, ShadowStatus.STARTED)  # an end time already passed fires next

    async def _end_due(self, key: Key) -> None:
        t = await self.store.read.shadow_tests.get(*key)
        if t is not None and t.status == ShadowStatus.STARTED:
            await self.end(t)


def _check_events(t: ShadowTest) -> None:
    if not 1 <= t.maximum_runs <= MAX_RUNS:
        raise Invalid(f"maximum_runs must be between 1 and {MAX_RUNS}, got {t.maximum_runs}")
    t.start_time = timestamp(t.start_time, "start_events.time")
    t.end_time = timestamp(t.end_time, "termination_events.time")
    if t.end_time is None:
        return
    if t.end_time <= now():
        raise Invalid(f"termination_events.time {t.end_time} has passed")
    if t.start_time is not None and t.start_time >= t.end_time:
        raise Invalid("start_events.time must come before termination_events.time")


def _remove_all(folders: builtins.list[Path]) -> None:
    for folder in folders:
        trees.remove(folder)
