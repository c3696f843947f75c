"""Drives one run through the execution backend to a written outcome.

Right after the spawn, the caller's ``record`` writes the run ``running`` with
its placement (what recovery needs to find it): the scheduler claims a queued
run that way, and a new run admitted into a free slot is written for the first
time (see ``RunService``). Once recorded, whatever happens, the run leaves
this module finished: every path ends in a transition through ``RunStates``,
because a run stuck "running" is the worst failure an orchestrator can have.

Everything before the spawn is ``stage`` (the backend's ``prepare``): the
scheduler stages the run next in line while every slot is busy, so a freed
slot only hands a command over.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from orchestrator.config import Settings
from orchestrator.models import EnvStatus, Executable, Failure, FailureKind, Run, RunStatus
from orchestrator.runs import secrets
from orchestrator.runs.backend import Backend, Execution, Job, StartFailed
from orchestrator.runs.manifests import ManifestCache
from orchestrator.runs.outcome import outcome
from orchestrator.runs.states import Finish, RunStates
from orchestrator.runs.workspace import Workspace, stderr_tail
from orchestrator.store import Store

log = logging.getLogger("orch.executor")

Record = Callable[[dict[str, Any] | None], Awaitable[bool]]
"""Writes a just-spawned run down with its placement; ``False`` means it must not go on
(its process is killed and nothing more is written)."""


class Executor:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        backend: Backend,
        states: RunStates,
        manifests: ManifestCache,
    ) -> None:
        self.store, self.settings, self.backend = store, settings, backend
        self.states, self.manifests = states, manifests
        self.executions: dict[str, Execution] = {}
        self._ending: dict[str, Failure | None] = {}
        """Runs asked to end early: None = canceled by the user, else failed with that."""
        self._settled: dict[str, Executable] = {}
        """Executables whose row can no longer change (bytes by sha, environment settled or
        none to build): read once instead of once per run."""

    async def job(self, run: Run) -> Job:
        exe = self._settled.get(run.executable_id) or await self._executable(run.executable_id)
        return Job(run, exe, self.manifests.get(exe.id, exe.manifest))

    async def _executable(self, exe_id: str) -> Executable:
        exe = await self.store.read.executables.get(exe_id)
        if exe is None:
            raise RuntimeError(f"executable {exe_id} is gone")
        no_env = exe.type != "python" or self.settings.python_envs == "daemon"
        # no requirements: nothing is ever built, the status stays ``none`` for good
        nothing_to_build = (
            exe.env_status == EnvStatus.NONE
            and self.manifests.get(exe.id, exe.manifest).pip_requirements is None
        )
        if exe.env_status == EnvStatus.READY or no_env or nothing_to_build:
            if len(self._settled) >= 256:
                self._settled.pop(next(iter(self._settled)))
            self._settled[exe_id] = exe
        return exe

    async def stage(self, run: Run) -> tuple[Job, Any]:
        """Everything before the spawn; raises ``StartFailed`` when the run cannot start."""
        job = await self.job(run)
        if run.secrets_collection_id:
            job = replace(job, secrets=await secrets.load(self.store, run))
        return job, await self.backend.prepare(job)

    def unstage(self, run_id: str, staging: asyncio.Future[Any]) -> None:
        self.backend.discard(run_id, staging)

    async def execute(
        self,
        run: Run,
        record: Record,
        gone: Callable[[], None],
        staged: Awaitable[tuple[Job, Any]] | None = None,
    ) -> None:
        """Run ``run`` to a written outcome; ``gone()`` is called as soon as its processes
        are, before that outcome is collected and written. ``staged``: the run's ``stage``
        begun ahead (its failures surface here, like those of a stage done now)."""
        started = time.monotonic()
        execution: Execution | None = None
        try:
            failure: Failure | None = None
            try:
                job, prepared = await (staged if staged is not None else self.stage(run))
                execution = await self._start(job, prepared)
            except StartFailed as exc:
                failure = exc.failure
            except Exception as exc:  # the run must end, whatever broke
                log.exception("run %s could not be started", run.id)
                failure = Failure(FailureKind.CRASH, detail=repr(exc))
            if not await record(execution.placement if execution else None):
                if execution is not None:
                    execution.cancel(grace_seconds=0)
                    await execution.wait()
                return
            if failure is not None or execution is None:
                await self.states.finish(run.id, Finish(RunStatus.FAILED, failure))
                return
            await self._supervise(job, prepared, execution, gone)
        except Exception as exc:  # the run must end, whatever broke
            log.exception("run %s crashed the executor", run.id)
            if execution is not None:
                execution.cancel(grace_seconds=0)
            failure = Failure(FailureKind.CRASH, detail=repr(exc))
            duration = (time.monotonic() - started) * 1000
            await self.states.finish(
                run.id, Finish(RunStatus.FAILED, failure, duration_ms=duration)
            )
        finally:
            self.executions.pop(run.id, None)
            self._ending.pop(run.id, None)

    async def resume(self, run: Run, execution: Execution, gone: Callable[[], None]) -> None:
        """Supervise a run the backend reattached to after a restart, to its outcome."""
        self.executions[run.id] = execution
        try:
            await self._supervise(await self.job(run), None, execution, gone)
        except Exception as exc:  # the run must end, whatever broke
            log.exception("run %s crashed the executor", run.id)
            execution.cancel(grace_seconds=0)
            failure = Failure(FailureKind.CRASH, detail=repr(exc))
            await self.states.finish(run.id, Finish(RunStatus.FAILED, failure))
        finally:
            self.executions.pop(run.id, None)
            self._ending.pop(run.id, None)

    async def _start(self, job: Job, prepared: Any) -> Execution:
        execution = await self.backend.start(job, prepared)
        self.executions[job.run.id] = execution
        if job.run.id in self._ending:  # told to end while it was being spawned
            execution.cancel(grace_seconds=0)
        return execution

    async def _supervise(
        self, job: Job, prepared: Any, execution: Execution, gone: Callable[[], None]
    ) -> None:
        run = job.run
        result = await execution.wait(gone)
        disk = self.store.disk.witness(result.duration_seconds)  # before clean-up frees any
        gone()  # if the backend could not tell sooner
        await asyncio.sleep(0)  # a run that got the slot spawns before this one is collected
        got = await self.backend.collect(job, prepared, result)
        ws = Workspace.of(self.settings.home.run_path(run.id))
        tail = functools.partial(stderr_tail, ws.stderr)
        status, failure = disk.verdict(
            *outcome(result, run.limits, tail), tail, (ws.stdout, ws.stderr)
        )
        if result.canceled and (told := self._ending.get(run.id)) is not None:
            status, failure = RunStatus.FAILED, told
        end = Finish(
            status,
            failure,
            exit_code=result.exit_code,
            signal=result.signal,
            duration_ms=result.duration_seconds * 1000,
            cpu_seconds=result.cpu_seconds,
            peak_memory_mb=result.peak_memory_mb,
            output_size=got.output_size,
            statistics=got.statistics,
            metrics=got.metrics,
            placement=_placed(run, execution),
        )
        await self.states.finish(run.id, end)

    def cancel(self, run_id: str) -> None:
        """Cancel a running run; the whole process tree is killed and the run ends canceled."""
        self._ending.setdefault(run_id, None)
        if (execution := self.executions.get(run_id)) is not None:
            execution.cancel()

    def abort(self, run_id: str, failure: Failure) -> None:
        """End a running run as failed with ``failure`` (the daemon is stopping)."""
        self._ending[run_id] = failure
        if (execution := self.executions.get(run_id)) is not None:
            execution.cancel(grace_seconds=0)


def _placed(run: Run, execution: Execution) -> dict[str, Any] | None:
    """The run's placement as its end knows it, if not the one recorded with its claim
    (a Dask run learns its worker once one accepts it): None keeps that one."""
    placement = execution.placement
    return placement if placement is not None and placement != run.placement else None
