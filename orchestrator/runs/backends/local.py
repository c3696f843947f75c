"""The local backend: models run in the sandbox on this machine.

``prepare`` is everything before the spawn (the run's environment, its
workspace of symlinks into the read-only package, its command and clean
environment), so the scheduler can stage the next run while every slot is
busy and a freed slot only hands a command over. Outputs are written straight
into the run's folder, so ``collect`` only measures them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import anyio

from orchestrator import trees
from orchestrator.config import Settings
from orchestrator.environments import EnvFailed, Environments, build_isolation
from orchestrator.models import Failure, FailureKind, Run, Secret, epoch
from orchestrator.packaging.manifest import Manifest
from orchestrator.runs.access import run_access
from orchestrator.runs.backend import PROTECTIONS, Collected, Execution, Job, StartFailed
from orchestrator.runs.cgroups import run_groups
from orchestrator.runs.inputs import DIRECTORY_FORMATS
from orchestrator.runs.options import option_argv
from orchestrator.runs.process import ProcessResult, ProcessSpec, StrPath
from orchestrator.runs.proctree import kill_marked
from orchestrator.runs.sandbox import Command, RunningProcess, Sandbox, kill_leftovers
from orchestrator.runs.secrets import env_of, scrub, write_files
from orchestrator.runs.workspace import (
    Workspace,
    clear_attempt,
    clear_tmp,
    collect,
    prepare,
    small_output,
)

log = logging.getLogger("orch.local")

_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "USER", "LOGNAME")


def model_env(run: Run, ws: Workspace, python: str) -> dict[str, str]:
    """The child's whole environment: nothing of the daemon's secrets, only what models need.

    ``ORCH_*`` and ``NEXTMV_*`` variables of the daemon (keys, endpoints) are
    never passed; ``TMPDIR`` is private to the run and emptied after it.
    """
    env = process_env(ws.tmp, python)
    env.update(ORCH_RUN_ID=run.id, ORCH_APP_ID=run.app_id, ORCH_INSTANCE_ID=run.instance_id)
    return env


def process_env(tmp: StrPath, python: str) -> dict[str, str]:
    """``model_env`` less the run's ids: the daemon's harmless variables, ``python``'s
    folder first on ``PATH``, ``tmp`` as ``TMPDIR`` (also for benchmarks of the jail)."""
    env = dict(_inherited(python))
    env["TMPDIR"] = os.fspath(tmp)
    return env


@functools.lru_cache(maxsize=16)
def _inherited(python: str) -> dict[str, str]:
    """What every run of ``python`` inherits, read once: orch never changes its own
    environment while it runs, and each read of ``os.environ`` costs two codec calls."""
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["PATH"] = f"{os.path.dirname(python) or '.'}:{env['PATH']}"
    env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONIOENCODING="utf-8")
    return env


@dataclass(frozen=True)
class Staged:
    """A run ready to spawn: its workspace exists and its command is built."""

    spec: ProcessSpec
    ws: Workspace
    secret_files: tuple[str, ...] = ()
    """Written for this run; removed when it ends (``secrets.scrub``)."""
    command: Command | None = None
    """Its jail's command, when it was made ahead (``Sandbox.command``)."""


def stage(
    run: Run,
    run_dir: StrPath,
    package: StrPath,
    manifest: Manifest,
    python: str,
    read_paths: Sequence[str] = (),
    label: str | None = None,
    secrets: Sequence[Secret] = (),
) -> Staged:
    """The run's workspace in ``run_dir`` and the command that runs it in the sandbox.

    The one place a run's process is described, wherever it runs: the local backend
    calls it on this machine, the dask backend on the worker (with the worker's paths
    for the package, the input and the interpreter, and a label per attempt)."""
    package = os.path.abspath(package)  # as every path the jail is given
    ws = prepare(run_dir, package, manifest, run.input_format, run.input_path)
    files = write_files(run_dir, secrets)
    access = run_access(run, ws, python, package, read_paths)
    spec = ProcessSpec(
        argv=[*manifest.entrypoint_argv(python, package), *option_argv(run.options)],
        cwd=ws.cwd,
        # secrets last: they may set what orch only passes on (LANG, TZ...); what it sets
        # itself (PATH, HOME, TMPDIR, ORCH_*) no secret may name (``registry/secrets.py``)
        env={**model_env(run, ws, python), **env_of(secrets)},
        stdin=ws.stdin,
        stdout=ws.stdout,
        stderr=ws.stderr,
        limits=run.limits,
        label=label or run.id,
        access=replace(access, read=(*access.read, *files)),  # the jail makes them readable
    )
    return Staged(spec, ws, files)


@dataclass
class LocalExecution:
    """A model process tree in the sandbox; its placement is what recovery needs."""

    process: RunningProcess
    scrub_dir: str | None = None
    """The run's folder, when it got secret files: they go as soon as its processes do."""

    @property
    def placement(self) -> dict[str, Any] | None:
        proc = self.process
        if proc.pid is None:
            return None
        return {
            "backend": "local",
            "pid": proc.pid,
            "pgid": proc.pgid,
            "cgroup": ",".join(proc.cgroups) or None,
            PROTECTIONS: list(proc.isolation),
        }

    async def wait(self, gone: Callable[[], None] | None = None) -> ProcessResult:
        try:
            return await self.process.wait(gone)
        finally:
            if self.scrub_dir is not None:
                scrub(self.scrub_dir)

    def cancel(self, grace_seconds: float = 2.0) -> None:
        self.process.cancel(grace_seconds)


class LocalBackend:
    name = "local"

    def __init__(self, settings: Settings, sandbox: Sandbox, envs: Environments) -> None:
        self.settings, self.sandbox, self.envs = settings, sandbox, envs

    @property
    def slots(self) -> int:
        return max(1, self.settings.concurrency)

    @property
    def isolation(self) -> dict[str, Any]:
        return (
            {"containment": self.sandbox.containment}
            | self.sandbox.isolation.to_dict()
            | {"builds": build_isolation(self.sandbox)}
        )

    @property
    def details(self) -> dict[str, Any]:
        return {}

    async def prepare(self, job: Job) -> Staged:
        run, exe, manifest = job.run, job.executable, job.manifest
        try:
            python = await self.envs.interpreter(exe, run.app_id)
        except EnvFailed as exc:
            raise StartFailed(Failure(FailureKind.ENVIRONMENT, detail=exc.detail)) from None
        package = self.settings.home.package_path(exe.id)
        run_dir = self.settings.home.run_path(run.id)
        read_paths = self.settings.isolation.read_paths
        try:
            staged = stage(run, run_dir, package, manifest, python, read_paths, secrets=job.secrets)
        except FileNotFoundError as exc:
            if exc.filename != package:
                raise
            why = (
                f"its package folder {package} is missing (removed outside orch); a restart "
                "of the daemon unpacks it again from the stored package, or push the app again"
            )
            raise StartFailed(Failure(FailureKind.SPAWN, detail=why)) from None
        return replace(staged, command=self.sandbox.command(staged.spec))

    def discard(self, run_id: str, staging: asyncio.Future[Any]) -> None:
        """Once its staging has stopped, the workspace is cleared, keeping the input."""

        def clear(_: asyncio.Future[Any]) -> None:
            if not staging.cancelled():
                staging.exception()  # retrieved: a failed stage is no error of a canceled run
            self.sandbox.chores.later(
                functools.partial(clear_attempt, self.settings.home.run_dir(run_id))
            )

        staging.cancel()
        staging.add_done_callback(clear)

    async def start(self, job: Job, prepared: Staged) -> LocalExecution:
        scrub_dir = prepared.ws.root if prepared.secret_files else None
        try:
            process = await self.sandbox.start(prepared.spec, prepared.command)
            return LocalExecution(process, scrub_dir)
        except BaseException:
            if scrub_dir is not None:
                scrub(scrub_dir)
            raise

    async def collect(self, job: Job, prepared: Staged, result: ProcessResult) -> Collected:
        ws, fmt = prepared.ws, job.run.input_format
        args = (ws, job.manifest, fmt, self.settings.statistics_parse_bytes)
        small = fmt not in DIRECTORY_FORMATS and small_output(ws.stdout)
        try:
            return collect(*args) if small else await anyio.to_thread.run_sync(collect, *args)
        finally:  # emptied whatever collecting met: the README promises it
            self.sandbox.chores.later(functools.partial(clear_tmp, ws.tmp))

    async def recover(
        self, running: list[Run], queued: list[Run], known: set[str]
    ) -> dict[str, Execution]:
        """Local processes never survive their daemon: kill what is left of every run a
        previous daemon ran, and of runs it spawned without writing them down."""
        for run in running:
            sweep_leftovers(run)
            scrub(self.settings.home.run_dir(run.id))
        self._sweep_unwritten(queued, known)
        return {}

    def _sweep_unwritten(self, queued: list[Run], known: set[str]) -> None:
        """Runs are spawned a moment before the write that says so: a daemon killed in
        that window leaves a process no row names (a new run: a folder no row names; a
        queued run). Kill them by their marker and cgroups; a queued run's half-made
        workspace is cleared so it starts afresh, an unwritten run's folder goes.

        Only a queued run whose workspace was begun can have been spawned (staging makes
        ``work/`` first): one that never got that far is left alone, at the cost of a
        lookup (and two ``stat``s when it has a folder for its input). Probing every
        queued run (its cgroups, its folder: 0.1-0.5 ms each) made start-up grow with the
        queue: 39,000 queued runs outlasted ``orch daemon start``'s 20 s."""
        home = self.settings.home
        folders = set(os.listdir(home.runs))
        unwritten = folders - known
        staged = [r.id for r in queued if r.id in folders and _begun(home.run_path(r.id))]
        suspects = unwritten.union(staged)
        if not suspects:
            return
        killed = kill_marked(suspects)
        for run_id in suspects:
            kill_leftovers(None, None, [str(g) for g in run_groups(run_id)], None)
        for run_id in staged:
            clear_attempt(home.run_dir(run_id))
        for run_id in unwritten:
            trees.remove(home.run_dir(run_id))
        if unwritten or killed:
            log.warning(
                "removed %d run folder(s) no run names; %d unrecorded process(es) killed",
                len(unwritten),
                killed,
            )

    async def close(self) -> None:
        self.sandbox.close()


def _begun(run_dir: str) -> bool:
    """Whether a run's workspace was begun (``workspace.prepare`` makes ``work/``, then
    ``tmp/``; ``clear_attempt`` removes them in that order)."""
    ws = Workspace.of(run_dir)
    return os.path.lexists(ws.work) or os.path.lexists(ws.tmp)


def sweep_leftovers(run: Run) -> None:
    """Kill what survived of a run a previous daemon ran on this machine (its placement
    names its pid, process group and cgroups)."""
    where = run.placement or {}
    cgroup = where.get("cgroup")
    try:
        kill_leftovers(
            where.get("pid"),
            where.get("pgid"),
            cgroup.split(",") if cgroup else [],
            epoch(run.started_at),
            label=run.id,
        )
    except Exception:  # a failed sweep must not keep the daemon from starting
        log.exception("could not sweep the processes of run %s", run.id)
