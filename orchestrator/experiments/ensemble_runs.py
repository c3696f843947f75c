"""Ensemble runs: one run that fans out to child runs and returns the best of them.

The ensemble run is an ordinary run row (type ``ensemble``) that never has a
process: it is written ``running`` with its children queued beside it (type
``ensemble-child``, ``parent_run_id`` set, the run group in ``option_set``),
all sharing its input. When its last child ends (heard from ``RunEvents``, as
batch experiments do), the rules pick the winner; the ensemble run takes the
winner's output and statistics and succeeds, or fails when no child can win.
Canceling it cancels its children. After a restart, recovery ends a running
ensemble run like any run whose process is gone; ``resume`` then settles those
whose children all ended and cancels children left without a running parent.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from orchestrator import trees
from orchestrator.ensemble_models import EnsembleDefinition, EnsembleRun
from orchestrator.errors import NotFound
from orchestrator.experiments.ensemble_rules import Candidate, choose
from orchestrator.experiments.ensembles import EnsembleDefinitions
from orchestrator.home import Home
from orchestrator.ids import new_id
from orchestrator.models import Failure, FailureKind, Run, RunStatus, RunType, now
from orchestrator.runs.service import RunRequest, RunService
from orchestrator.runs.states import Finish
from orchestrator.store import Store

log = logging.getLogger("orch.ensembles")


@dataclass
class EnsembleView:
    """An ensemble run as ``GET /runs/{id}/ensemble`` shows it."""

    run: Run
    record: EnsembleRun
    children: list[Run]


class EnsembleRuns:
    def __init__(
        self, store: Store, home: Home, runs: RunService, definitions: EnsembleDefinitions
    ) -> None:
        self.store, self.home, self.runs, self.definitions = store, home, runs, definitions
        self._pending: dict[str, set[str]] = {}
        """Running ensemble runs and their children not finished yet."""
        self._parent_of: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, req: RunRequest) -> Run:
        """Check everything, then write the ensemble run and queue its children."""
        definition = await self.definitions.get(req.app_id, req.ensemble_definition_id or "")
        base = replace(req, version_id=None, ensemble_definition_id=None)
        parent = await self.runs.prepare(
            replace(base, instance_id=definition.run_groups[0].instance_id)
        )
        parent.run_type = RunType.ENSEMBLE
        children = await self._plan(base, definition, parent)
        run_dir = self.home.run_dir(parent.id)
        run_dir.mkdir()
        ensemble = EnsembleRun(parent.id, req.app_id, definition)
        self._track(parent.id, [c.id for c in children])
        try:
            parent.input_path, parent.input_size = await self.runs.store_input(
                run_dir, req, parent.input_format
            )
            parent.status = RunStatus.RUNNING
            for child in children:
                child.input_path, child.input_size = parent.input_path, parent.input_size
            # the ensemble run, its row and its children in one write: a kill in between
            # left a running ensemble run without children, failed at the next start
            await self.runs.create_many(
                children, owner=lambda w: w.ensembles.insert_run(ensemble), lead=parent
            )
        except BaseException:
            self._forget(parent.id)
            trees.remove(run_dir)
            raise
        return parent

    async def _plan(
        self, base: RunRequest, definition: EnsembleDefinition, parent: Run
    ) -> list[Run]:
        children = []
        for group in definition.run_groups:
            template = await self.runs.prepare(
                replace(
                    base,
                    instance_id=group.instance_id,
                    options={**base.options, **group.options},
                    input_format=parent.input_format,
                    name=f"{parent.name or definition.id} / {group.id}",
                )
            )
            children += [
                replace(
                    template,
                    id=new_id("run"),
                    created_at=now(),
                    run_type=RunType.ENSEMBLE_CHILD,
                    parent_run_id=parent.id,
                    option_set=group.id,
                    repetition=rep,
                )
                for rep in range(group.repetitions)
            ]
        return children

    async def view(self, app_id: str, run_id: str) -> EnsembleView:
        run = await self.runs.get(app_id, run_id)
        record = await self.store.read.ensembles.get_run(run_id)
        if record is None:
            raise NotFound(f"run {run_id!r} is not an ensemble run")
        return EnsembleView(run, record, await self.store.read.ensembles.children(run_id))

    async def definition_id(self, run: Run) -> str | None:
        """The definition an ensemble run was started from (None for any other run): its
        metadata names it, so the SDK's ``clone_run`` starts the same ensemble again."""
        if run.run_type != RunType.ENSEMBLE:
            return None
        record = await self.store.read.ensembles.get_run(run.id)
        return record.definition.id if record is not None else None

    async def cancel(self, runs: list[Run]) -> list[Run]:
        """Cancel the ensemble runs among ``runs`` with their children; return the others."""
        others = []
        for run in runs:
            if run.run_type != RunType.ENSEMBLE:
                others.append(run)
                continue
            self._forget(run.id)
            left = [
                c for c in await self.store.read.ensembles.children(run.id) if not c.status.finished
            ]
            await self.runs.states.finish(
                run.id, Finish(RunStatus.CANCELED, duration_ms=_elapsed_ms(run))
            )
            if left:
                await self.runs.cancel_many(left)
        return others

    def on_run_changed(self, run_id: str, status: RunStatus) -> None:
        """RunEvents listener: settle an ensemble run when its last child ends."""
        if not status.finished or (parent := self._parent_of.pop(run_id, None)) is None:
            return
        pending = self._pending.get(parent)
        if pending is not None:
            pending.discard(run_id)
            if not pending:
                self._settle_soon(parent)

    def _track(self, parent_id: str, child_ids: list[str]) -> None:
        self._pending[parent_id] = set(child_ids)
        self._parent_of.update(dict.fromkeys(child_ids, parent_id))

    def _forget(self, parent_id: str) -> None:
        for child_id in self._pending.pop(parent_id, set()):
            self._parent_of.pop(child_id, None)

    def _settle_soon(self, parent_id: str) -> None:
        task = asyncio.create_task(self._settle_or_fail(parent_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle_or_fail(self, parent_id: str) -> None:
        """A settling that fails (a bug) ends the ensemble run failed, saying so: it used
        to stay ``running`` for good, and its ``--wait`` with it."""
        try:
            await self._settle(parent_id)
        except Exception as exc:
            log.exception("ensemble run %s could not be settled", parent_id)
            failure = Failure(FailureKind.CRASH, detail=f"choosing its winner failed: {exc!r}")
            await self.runs.states.finish(parent_id, Finish(RunStatus.FAILED, failure=failure))

    async def _settle(self, parent_id: str) -> None:
        self._forget(parent_id)
        parent = await self.store.read.runs.get(parent_id)
        record = await self.store.read.ensembles.get_run(parent_id)
        if parent is None or record is None or parent.status != RunStatus.RUNNING:
            return
        children = await self.store.read.ensembles.children(parent_id)
        ok = [Candidate(c.id, c.statistics) for c in children if c.status == RunStatus.SUCCEEDED]
        verdict = choose(ok, record.definition.rules)
        evaluation = [
            {
                "id": c.id,
                "run_group_id": c.option_set,
                "repetition": c.repetition,
                "status": c.status.value,
                "values": verdict.values.get(c.id, {}),
            }
            for c in children
        ]
        async with self.store.write() as w:
            await w.ensembles.record_verdict(parent_id, verdict.winner, evaluation)
        winner = next((c for c in children if c.id == verdict.winner), None)
        if winner is None:
            failure = Failure(FailureKind.EXTERNAL, detail=f"ensemble: {verdict.reason}")
            end = Finish(RunStatus.FAILED, failure=failure, duration_ms=_elapsed_ms(parent))
        else:
            await asyncio.to_thread(
                _copy_output, self.home.run_dir(winner.id), self.home.run_dir(parent_id)
            )
            end = Finish(
                RunStatus.SUCCEEDED,
                statistics=winner.statistics,
                output_size=winner.output_size,
                duration_ms=_elapsed_ms(parent),
            )
        if await self.runs.states.finish(parent_id, end):
            log.info("ensemble run %s %s (winner %s)", parent_id, end.status.value, verdict.winner)

    async def resume(self) -> None:
        """At start: settle or track ensemble runs still running; cancel children whose
        ensemble run ended while the daemon was down."""
        for parent in await self.store.read.ensembles.unfinished_parents():
            children = await self.store.read.ensembles.children(parent.id)
            left = [c.id for c in children if not c.status.finished]
            if left:
                self._track(parent.id, left)
            else:
                await self._settle(parent.id)
        orphans = await self.store.read.ensembles.orphans()
        if orphans:
            await self.runs.cancel_many(orphans)


def _elapsed_ms(run: Run) -> float:
    start = datetime.fromisoformat(run.started_at or run.created_at)
    return max(0.0, (datetime.fromisoformat(now()) - start).total_seconds() * 1000)


def _copy_output(source: Path, target: Path) -> None:
    """The winner's output becomes the ensemble run's."""
    shutil.copyfile(source / "stdout", target / "stdout")
