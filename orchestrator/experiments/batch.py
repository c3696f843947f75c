"""Batch experiments: every input of a set x targets x option sets x repetitions.

The runs go through the ordinary queue, at a priority below interactive runs
by default, so a large experiment never starves a developer's manual run. An
experiment ends when its last run does: ``completed``, or ``failed`` when no
run succeeded; ``cancel`` ends it at once and stops what is left.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

from orchestrator import trees
from orchestrator.errors import Conflict, Invalid, NotFound
from orchestrator.experiments.inputs import (
    InputService,
    InputSetService,
    require_input,
)
from orchestrator.experiments.queue_order import check_seed, draw_seed, fair_order
from orchestrator.experiments.scenarios import ScenarioSpec, expand, repeated, too_many_runs
from orchestrator.experiments.summary import arm_baseline, arm_name
from orchestrator.home import Home
from orchestrator.ids import check_label, new_id, relabel, validate_child_id
from orchestrator.models import (
    TIMESTAMP_FORMAT,
    Experiment,
    ExperimentStatus,
    ExperimentType,
    ManagedInput,
    Run,
    RunStatus,
)
from orchestrator.registry.lookup import require_app
from orchestrator.runs.service import RunRequest, RunService
from orchestrator.runs.tracked import TrackedResult
from orchestrator.store import Repos, Store

log = logging.getLogger("orch.experiments")

EXPERIMENT_PRIORITY = 8
"""Below the interactive default (6): manual runs overtake queued experiment runs."""
YIELD_EVERY = 500
"""Runs prepared between two yields to the event loop."""
DELETE_BATCH = 500
"""Runs deleted per write (``delete``): ~30 ms of SQLite, then the loop answers."""
MAX_PLANNED_RUNS = 100_000
"""Runs one experiment may make. The plan is a list in the daemon's memory: a request
for 10^8 repetitions grew the daemon to 24 GB before the kernel killed it."""

Key = tuple[str, str]
"""(app id, experiment id)"""
Note = dict[str, str | None]
"""An undeclared option of an option set: name, did_you_mean, option_set, note."""


@dataclass(frozen=True)
class PlannedRun:
    input_id: str
    instance_id: str | None = None
    version_id: str | None = None
    option_set: str | None = None
    repetition: int = 0
    scenario_id: str | None = None
    input_set_id: str | None = None


@dataclass
class BatchRequest:
    app_id: str
    experiment_id: str | None
    name: str | None
    input_set_id: str | None
    description: str = ""
    instance_ids: builtins.list[str] = field(default_factory=list)
    version_ids: builtins.list[str] = field(default_factory=list)
    option_sets: dict[str, dict[str, str]] = field(default_factory=dict)
    repetitions: int = 1
    runs: builtins.list[PlannedRun] = field(default_factory=list)
    baseline: str | None = None
    objective: str = "min"
    priority: int = EXPERIMENT_PRIORITY
    type: ExperimentType = ExperimentType.BATCH
    scenarios: builtins.list[ScenarioSpec] = field(default_factory=list)
    """A scenario test given by its scenarios (``experiments.scenarios`` expands them)."""
    seed: int | None = None
    """Of the queue order (``queue_order``); None: drawn at creation."""


class ExperimentService:
    def __init__(
        self,
        store: Store,
        home: Home,
        runs: RunService,
        inputs: InputService,
        input_sets: InputSetService,
    ) -> None:
        self.store, self.home, self.runs = store, home, runs
        self.inputs, self.input_sets = inputs, input_sets
        self._pending: dict[Key, set[str]] = {}
        """Started experiments and their runs not finished yet: settling one needs no read."""
        self._owner: dict[str, Key] = {}
        """Which started experiment an unfinished run belongs to."""
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, req: BatchRequest) -> Experiment:
        return (await self.start_noted(req))[0]

    async def start_noted(self, req: BatchRequest) -> tuple[Experiment, builtins.list[Note]]:
        """Start the experiment; with it, the options of its option sets that their
        version's app.yaml does not declare (``undeclared``): a typo there runs every run
        with the default, as silently as it would one run."""
        exp_id = validate_child_id(req.experiment_id or new_id("batch"), "experiment")
        check_label("experiment", req.name, req.description)
        await require_app(self.store.read, req.app_id)
        if await self.store.read.experiments.get(req.app_id, exp_id) is not None:
            raise Conflict(f"experiment {exp_id!r} already exists in app {req.app_id!r}")
        if await self.store.read.switchback.get(req.app_id, exp_id) is not None:  # runs link by id
            raise Conflict(f"switchback test {exp_id!r} already exists in app {req.app_id!r}")
        if req.objective not in ("min", "max"):
            raise Invalid(f"objective must be min or max, got {req.objective!r}")
        if req.type not in (ExperimentType.BATCH, ExperimentType.SCENARIO):
            raise Invalid("an acceptance experiment is made by creating an acceptance test")
        if any(not name.strip() for name in req.option_sets):  # it would read as "no set"
            raise Invalid("every option set needs a name")
        seed = draw_seed() if req.seed is None else check_seed(req.seed)
        if req.scenarios:
            req = await self._scenario_request(req)
        plan = req.runs or await self._cross_product(req)
        # a scenario test's scenarios and option sets are shuffled like any group
        runs = await self._prepare(req, exp_id, fair_order(plan, _group, seed))
        targets = list(dict.fromkeys(_target(r) for r in plan))  # as given, not as queued
        _check_baseline(req.baseline, plan)
        exp = Experiment(
            id=exp_id,
            app_id=req.app_id,
            name=req.name or exp_id,
            description=req.description,
            input_set_id=req.input_set_id,
            requested_runs=len(runs),
            option_sets=req.option_sets,
            targets=targets,
            baseline=req.baseline,
            objective=req.objective,
            type=req.type,
            seed=seed,
        )
        key = (req.app_id, exp_id)
        self._track(key, [run.id for run in runs])
        try:  # the experiment and its runs in one transaction: a kill leaves both or neither
            await self.runs.create_many(runs, owner=lambda w: w.experiments.insert(exp))
        except BaseException:
            self._forget(key)
            raise
        return exp, await self.undeclared(runs)

    async def undeclared(self, runs: builtins.list[Run]) -> builtins.list[Note]:
        """The run service's note (``RunService.undeclared``) for each option set and
        target version, once, saying which option set it is in."""
        firsts: dict[tuple[str | None, str | None, str], Run] = {}
        for run in runs:
            if run.option_set is not None:
                firsts.setdefault((run.instance_id, run.version_id, run.option_set), run)
        notes: dict[str, Note] = {}
        for (_, _, option_set), run in firsts.items():
            for found in await self.runs.undeclared(run):
                note = f"option set {option_set!r}: {found['note']}"
                notes.setdefault(note, found | {"option_set": option_set, "note": note})
        return list(notes.values())

    async def add_run(
        self, req: RunRequest, exp_id: str, tracked: TrackedResult | None = None
    ) -> Run:
        """A run asked for through ``/runs`` with the SDK's ``batch_experiment_id``: made
        (or, ``tracked``, recorded) as one of the experiment's runs, as Nextmv attaches it:
        listed and counted with the runs the experiment made itself, deleted with it.

        Only a batch experiment takes runs this way (a scenario or acceptance test's runs
        are its plan); a canceled one takes none (409), an unknown one is a 404 and nothing
        is made. An experiment ends when its last run does, so one that had ended starts
        again until this run ends. The run goes straight to the run service, like the
        experiment's own runs: no ensemble, shadow or switchback test is triggered by it.
        """
        exp = await self._joinable(req, exp_id)
        key = (req.app_id, exp_id)
        hold = f"joining:{new_id('run')}"  # keeps the experiment from settling meanwhile
        self._pending.setdefault(key, set()).add(hold)
        try:
            joining = replace(req, experiment_id=exp_id, experiment_type=exp.type.value)
            if tracked is None:
                run = await self.runs.create_plain(joining)
            else:
                run = await self.runs.track(joining, tracked)
            async with self.store.write() as w:
                joined = await w.experiments.join(req.app_id, exp_id)
        except BaseException:
            self._let_go(key, hold)
            raise
        if not joined:  # canceled (or deleted) while the run was made: so is the run
            self._let_go(key, hold)
            if not run.status.finished:
                await self.runs.cancel_many([run])
            return run
        if not run.status.finished:
            self._owner[run.id] = key
            self._pending.setdefault(key, set()).add(run.id)
        self._release(key, hold)
        if await self._ended_unseen(key, run) and not self._pending.get(key):
            await self._settle(*key)
        return run

    async def _joinable(self, req: RunRequest, exp_id: str) -> Experiment:
        """The experiment a run asks to join, if it can (``add_run``)."""
        if not exp_id:
            raise Invalid("batch_experiment_id is empty: name a batch experiment of the app")
        exp = await self.get(req.app_id, exp_id)
        if exp.type != ExperimentType.BATCH:
            raise Conflict(
                f"experiment {exp_id!r} is a {exp.type.value} test: runs join batch experiments"
                " only"
            )
        if exp.status == ExperimentStatus.CANCELED:
            raise Conflict(f"experiment {exp_id!r} was canceled: it takes no more runs")
        if req.ensemble_definition_id:
            raise Invalid("an ensemble run cannot join a batch experiment")
        return exp

    async def _ended_unseen(self, key: Key, run: Run) -> bool:
        """Whether the joined run has ended with no event left to settle the experiment:
        recorded finished (tracked), or ended before it was watched (its event went by)."""
        if run.status.finished:
            return True
        found = await self.store.read.runs.status(run.id)
        if found is not None and not found[1].finished:
            return False
        if self._owner.pop(run.id, None) is None:
            return False  # its event came meanwhile and did what it does
        self._release(key, run.id)
        return True

    def _release(self, key: Key, item: str) -> None:
        pending = self._pending.get(key)
        if pending is not None:
            pending.discard(item)

    def _let_go(self, key: Key, hold: str) -> None:
        """Drop a joining run's hold that no run replaces (it was refused): if the
        experiment's last run ended meanwhile, its settling waited on the hold. Settling an
        experiment that is not started changes nothing (``finish`` is guarded)."""
        self._release(key, hold)
        if not self._pending.get(key):
            self._settle_soon(key)

    async def _scenario_request(self, req: BatchRequest) -> BatchRequest:
        """The request with the runs and option sets its scenarios expand to."""
        if req.runs or req.input_set_id or req.instance_ids or req.version_ids or req.option_sets:
            raise Invalid("a scenario test is given by its scenarios or by its runs, not both")
        set_ids = dict.fromkeys(s.input_set_id for s in req.scenarios if s.input_set_id)
        members = {
            set_id: (await self.input_sets.get(req.app_id, set_id)).input_ids for set_id in set_ids
        }
        option_sets, expanded = expand(req.scenarios, members, req.repetitions, MAX_PLANNED_RUNS)
        runs = [
            PlannedRun(
                r.input_id,
                instance_id=r.instance_id,
                option_set=r.option_set,
                repetition=r.repetition,
                scenario_id=r.scenario_id,
                input_set_id=r.input_set_id,
            )
            for r in expanded
        ]
        return replace(
            req, runs=runs, option_sets=option_sets, type=ExperimentType.SCENARIO, scenarios=[]
        )

    async def _cross_product(self, req: BatchRequest) -> builtins.list[PlannedRun]:
        if not req.input_set_id:
            raise Invalid("give an input set (input_set_id) or explicit runs")
        if not req.instance_ids and not req.version_ids:
            raise Invalid("give at least one instance or version to compare")
        if req.repetitions < 1:
            raise Invalid(f"repetitions must be at least 1, got {req.repetitions}")
        _given_once("instance", req.instance_ids)
        _given_once("version", req.version_ids)
        members = await self.input_sets.members(req.app_id, req.input_set_id)
        sets: builtins.list[str | None] = list(req.option_sets) or [None]
        targets = [*((i, None) for i in req.instance_ids), *((None, v) for v in req.version_ids)]
        planned = len(members) * len(sets) * req.repetitions * len(targets)
        if planned > MAX_PLANNED_RUNS:  # counted before the list is: 10^8 repetitions ran OOM
            raise too_many_runs(planned, MAX_PLANNED_RUNS)
        # Grouped by (input, option set, repetition): fair_order keeps each group together.
        return [
            PlannedRun(item.id, instance_id=inst, version_id=ver, option_set=opt, repetition=rep)
            for item in members
            for opt in sets
            for rep in range(req.repetitions)
            for inst, ver in targets
        ]

    async def _prepare(
        self, req: BatchRequest, exp_id: str, plan: builtins.list[PlannedRun]
    ) -> builtins.list[Run]:
        """Check every run before queuing any: an experiment starts whole or not at all.

        Resolution, options and limits depend only on (target, option set), so
        they are worked out once per pair and copied for every input.
        """
        if not plan:
            raise Invalid("the experiment has no runs")
        inputs: dict[str, ManagedInput] = {}
        await self._check_input_sets(req, plan)
        start = datetime.now(UTC)
        templates: dict[tuple[str | None, str | None, str | None], Run] = {}
        runs = []
        for n, item in enumerate(plan):
            if n % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # 10,000 runs take ~0.1 s: let the loop answer meanwhile
            if not item.instance_id and not item.version_id:
                raise Invalid(f"run for input {item.input_id!r} names no instance or version")
            if item.option_set is not None and item.option_set not in req.option_sets:
                raise Invalid(f"option set {item.option_set!r} is not defined in option_sets")
            if item.input_id not in inputs:
                inputs[item.input_id] = await require_input(
                    self.store.read, req.app_id, item.input_id
                )
            source = inputs[item.input_id]
            key = (item.instance_id, item.version_id, item.option_set)
            if key not in templates:
                templates[key] = await self.runs.prepare(
                    RunRequest(
                        app_id=req.app_id,
                        instance_id=item.instance_id,
                        version_id=item.version_id,
                        input_format=source.format,
                        priority=req.priority,
                        experiment_id=exp_id,
                        experiment_type=req.type.value,
                        options=req.option_sets.get(item.option_set or "", {}),
                    )
                )
            runs.append(
                replace(
                    templates[key],
                    id=new_id("run"),
                    created_at=_queue_stamp(start, n),
                    input_id=source.id,
                    input_format=source.format,
                    input_path=str(self.inputs.path(source)),
                    input_size=source.size,
                    option_set=item.option_set,
                    repetition=item.repetition,
                    scenario_id=item.scenario_id,
                    input_set_id=item.input_set_id or req.input_set_id,
                )
            )
        return runs

    async def _check_input_sets(self, req: BatchRequest, plan: builtins.list[PlannedRun]) -> None:
        """Every input set named exists (404 otherwise), and each run takes an input of its
        set: the one it names (a scenario test's runs do) or else the experiment's.

        Explicit runs (the SDK always sends them) skip ``_cross_product``, which is what
        resolves the experiment's set otherwise: an unknown set, or an input from outside
        it, would be recorded as the experiment's and mislabel every run."""
        named = dict.fromkeys([req.input_set_id, *(p.input_set_id for p in plan)])
        members = {
            set_id: set((await self.input_sets.get(req.app_id, set_id)).input_ids)
            for set_id in named
            if set_id
        }
        for item in plan:
            set_id = item.input_set_id or req.input_set_id
            if set_id and item.input_id not in members[set_id]:
                raise Invalid(f"input {item.input_id!r} is not in input set {set_id!r}")

    async def get(self, app_id: str, exp_id: str) -> Experiment:
        exp = await self.store.read.experiments.get(app_id, exp_id)
        if exp is None:
            await require_app(self.store.read, app_id)
            raise NotFound(f"experiment {exp_id!r} not found in app {app_id!r}")
        return exp

    async def list(
        self, app_id: str, kind: ExperimentType | None = None
    ) -> builtins.list[Experiment]:
        """The app's experiments, newest first; with ``kind``, only those of that type."""
        await require_app(self.store.read, app_id)
        return await self.store.read.experiments.list(app_id, kind)

    async def counts(self, app_id: str, exp_id: str) -> dict[str, int]:
        return await self.store.read.runs.experiment_counts(app_id, exp_id)

    async def update(
        self, app_id: str, exp_id: str, name: str | None, description: str | None
    ) -> Experiment:
        exp = await self.get(app_id, exp_id)
        relabel("experiment", exp, name, description)
        async with self.store.write() as w:
            await w.experiments.update(exp)
        return exp

    async def cancel(self, app_id: str, exp_id: str) -> Experiment:
        """End the experiment ``canceled``, then cancel its unfinished runs.

        The experiment's end is written first and is the intent: a daemon stopped before
        its runs are all canceled leaves an ended experiment with unfinished runs, which
        the next start cancels (``runs/recovery``) and a second cancel finishes, where it
        was refused as "already ended" while the runs ran on."""
        exp = await self.get(app_id, exp_id)
        if exp.status == ExperimentStatus.STARTED:
            async with self.store.write() as w:
                await w.experiments.finish(app_id, exp_id, ExperimentStatus.CANCELED)
        elif not await self.store.read.runs.unfinished_of_experiment(app_id, exp_id):
            raise Conflict(f"experiment {exp_id!r} already ended ({exp.status.value})")
        await self._stop_runs(app_id, exp_id)
        return await self.get(app_id, exp_id)

    async def _stop_runs(self, app_id: str, exp_id: str) -> None:
        """Cancel the experiment's unfinished runs (``RunService.cancel_experiment_runs``);
        answer once nothing of it runs any more."""
        self._forget((app_id, exp_id))
        for run_id in await self.runs.cancel_experiment_runs(app_id, exp_id):
            await self.runs.wait(app_id, run_id, 30)

    async def delete(self, app_id: str, exp_id: str) -> None:
        """Delete an ended experiment with its runs and their folders.

        Its unfinished runs (a cancel cut short) are canceled first: the scheduler
        forgets them before their rows go, since a deleted run it still held was staged
        later, leaving a folder no row names. Then the runs go a batch per write, each
        batch's folders with it, the experiment with the last: the loop answers between
        two (39,000 runs in one write held it for seconds), and a daemon stopped half-way
        leaves an experiment to delete again, not runs that no experiment names."""
        exp = await self.get(app_id, exp_id)
        if exp.status == ExperimentStatus.STARTED:
            raise Conflict(f"experiment {exp_id!r} is still running; cancel it first")
        await self._stop_runs(app_id, exp_id)
        while True:
            async with self.store.write() as w:
                run_ids = await w.runs.delete_experiment_runs(app_id, exp_id, DELETE_BATCH)
                last = len(run_ids) < DELETE_BATCH
                if last:
                    await self._delete_row(w, app_id, exp_id)
            await anyio.to_thread.run_sync(_remove_all, [self.home.run_dir(r) for r in run_ids])
            if last:
                return

    @staticmethod
    async def _delete_row(w: Repos, app_id: str, exp_id: str) -> None:
        """The experiment's row, once none of its runs is left: one that joined it
        meanwhile (``add_run``), or that did not stop in time, keeps it."""
        if left := await w.runs.unfinished_of_experiment(app_id, exp_id):
            raise Conflict(
                f"experiment {exp_id!r} still has {left} queued or running run(s) (joined"
                " or still stopping); cancel it, then delete it again"
            )
        await w.experiments.delete(app_id, exp_id)

    def on_run_changed(self, run_id: str, status: RunStatus) -> None:
        """RunEvents listener: settle the experiment when its last run ends."""
        if not status.finished or (key := self._owner.pop(run_id, None)) is None:
            return
        pending = self._pending.get(key)
        if pending is not None:
            pending.discard(run_id)
            if not pending:
                self._settle_soon(key)

    def _track(self, key: Key, run_ids: builtins.list[str]) -> None:
        self._pending[key] = set(run_ids)
        self._owner.update(dict.fromkeys(run_ids, key))

    def _forget(self, key: Key) -> None:
        for run_id in self._pending.pop(key, set()):
            self._owner.pop(run_id, None)

    def _settle_soon(self, key: Key) -> None:
        task = asyncio.create_task(self._settle(*key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, app_id: str, exp_id: str) -> None:
        """End the experiment by its runs' outcomes, unless a run joined it meanwhile
        (``add_run``): then that run's end settles it. Checked inside the write, which a
        joining run's ``join`` also takes, so the two cannot cross."""
        key = (app_id, exp_id)
        if self._pending.get(key):
            return
        self._forget(key)
        counts = await self.store.read.runs.experiment_counts(app_id, exp_id)
        ok = counts.get(RunStatus.SUCCEEDED.value, 0)
        status = ExperimentStatus.COMPLETED if ok else ExperimentStatus.FAILED
        async with self.store.write() as w:
            if self._pending.get(key):
                return
            if await w.experiments.finish(app_id, exp_id, status):
                log.info("experiment %s/%s %s", app_id, exp_id, status.value)

    async def resume(self) -> None:
        """At start: experiments whose runs all ended while the daemon was down settle now;
        the others are tracked again."""
        runs = self.store.read.runs
        for exp in await self.store.read.experiments.started():
            key = (exp.app_id, exp.id)
            left = [  # ids only: reading 100,000 queued runs whole held the start up
                *await runs.ids_of_experiment(exp.app_id, exp.id, RunStatus.QUEUED),
                *await runs.ids_of_experiment(exp.app_id, exp.id, RunStatus.RUNNING),
            ]
            if left:
                self._track(key, left)
            else:
                await self._settle(*key)


def _given_once(kind: str, ids: builtins.list[str]) -> None:
    """A target listed twice would run every input twice on it and count both under one
    name: almost surely a typo, so it is refused rather than quietly made once."""
    if (target_id := repeated(ids)) is not None:
        raise Invalid(f"{kind} {target_id!r} appears more than once in {kind}_ids")


def _check_baseline(baseline: str | None, plan: builtins.list[PlannedRun]) -> None:
    """The baseline names one (target, option set) of the plan, as the summary will
    compare them (``summary.arm_baseline``): refused now, not after a long experiment."""
    arms = [(_target(r), r.option_set) for r in plan]
    chosen = arm_baseline(arms, baseline)
    names = list(dict.fromkeys(arm_name(*arm) for arm in arms))
    if chosen is not None and chosen not in names:
        raise Invalid(
            f"baseline {baseline!r} is not one of this experiment's targets: {', '.join(names)}"
        )


def _target(run: PlannedRun) -> str:
    """The name ``analysis.target_of`` gives the run this plans."""
    return run.instance_id or f"version:{run.version_id}"


def _group(run: PlannedRun) -> tuple[str, str | None, int]:
    return (run.input_id, run.option_set, run.repetition)


def _queue_stamp(start: datetime, n: int) -> str:
    """Creation stamps one microsecond apart: the queue orders equal priorities by
    ``created_at``, so the runs start in plan order even when the clock does not tick."""
    return (start + timedelta(microseconds=n)).strftime(TIMESTAMP_FORMAT)


def _remove_all(folders: builtins.list[Path]) -> None:
    for folder in folders:
        trees.remove(folder)
