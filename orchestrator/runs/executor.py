"""Executes one run: resolve the package, prepare, spawn under limits, record.

Right after the spawn, the caller's ``record`` writes the run ``running`` with
what recovery needs to find its processes: the scheduler claims a queued run
that way, and a new run admitted into a free slot is written for the first time
(see ``RunService``). Once recorded, whatever happens, the run
leaves this module finished: every exception path ends in a final transition,
because a run stuck "running" is the worst failure an orchestrator can have.

Everything before the spawn (reading the executable, the workspace, the
command and environment) is ``stage``: the scheduler stages the run next in
line while every slot is busy, so a freed slot only hands a command over.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio

from orchestrator.config import Settings
from orchestrator.environments import EnvFailed, Environments
from orchestrator.models import Run, RunStatus
from orchestrator.packaging.manifest import Manifest
from orchestrator.runs.access import run_access
from orchestrator.runs.events import RunEvents
from orchestrator.runs.inputs import DIRECTORY_FORMATS
from orchestrator.runs.manifests import ManifestCache
from orchestrator.runs.options import option_argv
from orchestrator.runs.outcome import outcome
from orchestrator.runs.process import ProcessSpec
from orchestrator.runs.sandbox import RunningProcess, Sandbox
from orchestrator.runs.workspace import (
    Workspace,
    clear_attempt,
    clear_tmp,
    collect,
    prepare,
    stderr_tail,
)
from orchestrator.store import Store

log = logging.getLogger("orch.executor")

SMALL_OUTPUT = 256 * 1024
"""Below this, parsing the output on the loop is cheaper than a hop to a thread."""

_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "USER", "LOGNAME")


def model_env(run: Run, ws: Workspace, python: str) -> dict[str, str]:
    """The child's whole environment: nothing of the daemon's secrets, only what models need.

    ``ORCH_*`` and ``NEXTMV_*`` variables of the daemon (keys, endpoints) are
    never passed; ``TMPDIR`` is private to the run and emptied after it.
    """
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    bindir = str(Path(python).parent)
    env["PATH"] = f"{bindir}:{env['PATH']}"
    env.update(
        TMPDIR=str(ws.tmp),
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONIOENCODING="utf-8",
        ORCH_RUN_ID=run.id,
        ORCH_APP_ID=run.app_id,
        ORCH_INSTANCE_ID=run.instance_id,
    )
    return env


@dataclass(frozen=True)
class Spawned:
    """What recovery needs to find a run's processes; all ``None`` if it never started."""

    pid: int | None = None
    pgid: int | None = None
    cgroup: str | None = None


@dataclass(frozen=True)
class Staged:
    """A run ready to spawn: its workspace exists and its command is built."""

    spec: ProcessSpec
    ws: Workspace
    manifest: Manifest


Record = Callable[[Spawned], Awaitable[bool]]
"""Writes a just-spawned run down; ``False`` means it must not go on (its process is
killed and nothing more is written)."""


class Executor:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        sandbox: Sandbox,
        envs: Environments,
        events: RunEvents,
        manifests: ManifestCache,
    ) -> None:
        self.store, self.settings, self.sandbox = store, settings, sandbox
        self.envs, self.events, self.manifests = envs, events, manifests
        self.processes: dict[str, RunningProcess] = {}
        self._ending: dict[str, str | None] = {}
        """Runs asked to end early: None = canceled by the user, text = aborted with that error."""

    async def execute(
        self,
        run: Run,
        record: Record,
        gone: Callable[[], None],
        staged: Awaitable[Staged] | None = None,
    ) -> None:
        """Run ``run`` to a written outcome; ``gone()`` is called as soon as its processes
        are, before that outcome is collected and written. ``staged``: the run's ``stage``
        begun ahead (its failures surface here, like those of a stage done now)."""
        started = time.monotonic()
        proc: RunningProcess | None = None
        failure: str | None = None
        try:
            try:
                proc, ws, manifest = await self._start(run, staged)
            except EnvFailed as exc:
                failure = exc.message
            except Exception as exc:  # the run must end, whatever broke
                log.exception("run %s could not be started", run.id)
                failure = f"orch could not execute the run: {exc!r}"
            if not await record(_spawned(proc)):
                if proc is not None:
                    proc.cancel(grace_seconds=0)
                    await proc.wait()
                return
            if failure is not None or proc is None:
                await self._finish(run.id, RunStatus.FAILED, error=failure)
                return
            await self._supervise(run, proc, ws, manifest, gone)
        except Exception as exc:  # the run must end, whatever broke
            log.exception("run %s crashed the executor", run.id)
            if proc is not None:
                proc.cancel(grace_seconds=0)
            await self._finish(
                run.id,
                RunStatus.FAILED,
                error=f"orch could not execute the run: {exc!r}",
                duration_ms=(time.monotonic() - started) * 1000,
            )
        finally:
            self.processes.pop(run.id, None)
            self._ending.pop(run.id, None)
            self.events.finished(run.id)

    async def stage(self, run: Run) -> Staged:
        """Everything before the spawn; raises ``EnvFailed`` if the run's environment failed."""
        exe = await self.store.read.executables.get(run.executable_id)
        if exe is None:
            raise RuntimeError(f"executable {run.executable_id} is gone")
        manifest = self.manifests.get(exe.id, exe.manifest)
        python = await self.envs.interpreter(exe)
        package = self.settings.home.executables / exe.id
        ws = prepare(
            self.settings.home.run_dir(run.id),
            package,
            manifest,
            run.input_format,
            Path(run.input_path) if run.input_path else None,
        )
        spec = ProcessSpec(
            argv=[*manifest.entrypoint_argv(python, package), *option_argv(run.options)],
            cwd=ws.cwd,
            env=model_env(run, ws, python),
            stdin=ws.stdin,
            stdout=ws.stdout,
            stderr=ws.stderr,
            limits=run.limits,
            label=run.id,
            access=run_access(self.settings, run, ws, python, package),
        )
        return Staged(spec, ws, manifest)

    def unstage(self, run_id: str, staging: asyncio.Future[Staged]) -> None:
        """A staged run will not start (canceled while queued): once its staging has
        stopped, its workspace is cleared, keeping the input."""

        def clear(_: asyncio.Future[Staged]) -> None:
            if not staging.cancelled():
                staging.exception()  # retrieved: a failed stage is no error of a canceled run
            self.sandbox.chores.later(
                functools.partial(clear_attempt, self.settings.home.run_dir(run_id))
            )

        staging.cancel()
        staging.add_done_callback(clear)

    async def _start(
        self, run: Run, staged: Awaitable[Staged] | None
    ) -> tuple[RunningProcess, Workspace, Manifest]:
        ready = await (staged if staged is not None else self.stage(run))
        proc = await self.sandbox.start(ready.spec)
        self.processes[run.id] = proc
        if run.id in self._ending:  # told to end while it was being spawned
            proc.cancel(grace_seconds=0)
        return proc, ready.ws, ready.manifest

    async def _supervise(
        self,
        run: Run,
        proc: RunningProcess,
        ws: Workspace,
        manifest: Manifest,
        gone: Callable[[], None],
    ) -> None:
        result = await proc.wait()
        gone()
        await asyncio.sleep(0)  # a run that got the slot spawns before this one is collected
        status, error = outcome(result, run.limits, stderr_tail(ws.stderr))
        if result.canceled and self._ending.get(run.id):
            status, error = RunStatus.FAILED, self._ending[run.id]
        args = (ws, manifest, run.input_format, self.settings.statistics_parse_bytes)
        small = run.input_format not in DIRECTORY_FORMATS and _size(ws.stdout) < SMALL_OUTPUT
        got = collect(*args) if small else await anyio.to_thread.run_sync(collect, *args)
        await self._finish(
            run.id,
            status,
            error=error,
            exit_code=result.exit_code,
            signal=result.signal,
            duration_ms=result.duration_seconds * 1000,
            cpu_seconds=result.cpu_seconds,
            peak_memory_mb=result.peak_memory_mb,
            output_size=got.output_size,
            statistics=got.statistics,
        )
        self.sandbox.chores.later(functools.partial(clear_tmp, ws.tmp))

    async def _finish(self, run_id: str, status: RunStatus, **fields: object) -> None:
        async with self.store.single() as w:
            await w.runs.transition(run_id, status, expect=[RunStatus.RUNNING], **fields)

    def cancel(self, run_id: str) -> None:
        """Cancel a running run; the whole process tree is killed and the run ends canceled."""
        self._ending.setdefault(run_id, None)
        if (proc := self.processes.get(run_id)) is not None:
            proc.cancel()

    def abort(self, run_id: str, reason: str) -> None:
        """End a running run as failed with ``reason`` (the daemon is stopping)."""
        self._ending[run_id] = reason
        if (proc := self.processes.get(run_id)) is not None:
            proc.cancel(grace_seconds=0)


def _spawned(proc: RunningProcess | None) -> Spawned:
    if proc is None or proc.pid is None:
        return Spawned()
    return Spawned(proc.pid, proc.pgid, ",".join(proc.cgroups) or None)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
