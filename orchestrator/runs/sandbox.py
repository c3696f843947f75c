"""Spawn one model process tree in its jail and under limits, watch it, leave nothing behind.

Every model runs in a jail (``runs/jail``) built with the strongest protections
the host offers, detected once (``isolation``): Landlock, namespaces, a private
view of the file system, and an unprivileged uid when the daemon is root.
Containment of the tree, strongest first: a per-run cgroup (memory + task limits
the kernel enforces on the whole tree, and a complete list of survivors), else
sampling the tree from /proc every ``sample_seconds`` and killing on breach. CPU
time, file size and open files are rlimits the jail sets before ``exec``; the
wall clock is the daemon's own timer; ``disk_mb`` is sampled (``disk``).

Environment builds run installers (and so any package's build code) in the same
jail (``build``), planned apart: the network stays open to them and they run as a
uid of their own (``isolation.for_builds``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import weakref
from dataclasses import dataclass
from pathlib import Path

from orchestrator.config import IsolationSettings, Settings
from orchestrator.errors import Unavailable
from orchestrator.runs.cgroups import detect, groups_named
from orchestrator.runs.chores import Chores
from orchestrator.runs.disk import DiskWatch
from orchestrator.runs.isolation import Isolation, for_builds, harden_daemon, jail_plan
from orchestrator.runs.isolation import detect as detect_isolation
from orchestrator.runs.launch import Launcher, SpawnError
from orchestrator.runs.process import ProcessResult, ProcessSpec
from orchestrator.runs.proctree import MARKER_VAR, kill_leftovers, kill_marked
from orchestrator.runs.running import RunningProcess
from orchestrator.runs.spawner import Spawner

__all__ = [
    "Command",
    "ProcessResult",
    "ProcessSpec",
    "RunningProcess",
    "Sandbox",
    "kill_leftovers",
]

log = logging.getLogger(__name__)

REFILL_DELAY_SECONDS = 0.01
"""A used standby is replaced this long after its run ends, off the run's critical path."""


@dataclass(frozen=True)
class Command:
    """A run's command for its jail (``Sandbox.command``), or why it cannot start."""

    marker: str
    """Tags the run's processes (found by it when there is no cgroup to list them)."""
    data: bytes | None
    error: str | None = None


class Sandbox:
    """Starts runs in jails with the best containment the host offers (detected once).

    ``standby`` jails are kept ready, each prepared (cgroup, namespaces, view) and
    waiting for a run; call ``close()`` at shutdown to drop them. ``python`` runs
    the jail (default: the daemon's own interpreter). ``jail_steps`` has each jail
    report its CPU step by step (``RunningProcess.jail``), for benchmarks: it costs a
    ``getrusage`` per step, so runs of the daemon leave it off.
    """

    def __init__(
        self,
        *,
        sample_seconds: float = 0.05,
        use_cgroups: bool | None = None,
        standby: int = 2,
        isolation: IsolationSettings | None = None,
        home: Path | None = None,
        tmp_size_mb: int = 1024,
        python: str | None = None,
        jail_steps: bool = False,
    ) -> None:
        self._sample_seconds = sample_seconds
        support = detect() if use_cgroups is not False else None
        if use_cgroups and support is None:
            raise Unavailable("cgroups were requested but this host has no usable cgroup")
        harden_daemon()
        spawner = Spawner(python)
        config = isolation or IsolationSettings()
        self.isolation, plan = detect_isolation(spawner, config, home, tmp_size_mb)
        """What every run gets here; ``isolation.refusal`` set means models are refused."""
        if jail_steps:
            plan["steps"] = True
        self._launcher = Launcher(support, spawner, self.isolation, plan, standby)
        self.builds = for_builds(self.isolation, config)
        """What environment builds get here (``build``)."""
        self._build_plan = (config, home, tmp_size_mb)
        self._builder: Launcher | None = None
        """Made by the first build: a daemon that builds nothing pays nothing for it."""
        self._launcher.refill()
        self.chores = Chores()
        """Where slow clean-up goes (cgroup removal, standby refills, run ``tmp`` folders)."""
        self.disk = DiskWatch()
        weakref.finalize(
            self, _close, self._launcher, self.chores, self.disk
        )  # even without close()

    @classmethod
    def from_settings(cls, settings: Settings, standby: int = 2) -> Sandbox:
        """The daemon's sandbox: its config's isolation, its home hidden from models.
        ``standby=0``: for builds only (a daemon whose models run on a cluster)."""
        return cls(
            sample_seconds=settings.memory_sample_seconds,
            isolation=settings.isolation,
            home=settings.home.root,
            tmp_size_mb=settings.limits.memory_mb or 1024,
            standby=standby,
        )

    @property
    def containment(self) -> str:
        """'cgroup-v2' | 'cgroup-v1' | 'sampling', for docs and logs."""
        support = self._launcher.support
        return support.kind if support else "sampling"

    def command(self, spec: ProcessSpec) -> Command:
        """What ``start`` needs that no process does, made ahead (a staged run's is made
        while every slot is busy, so a freed slot only hands it over)."""
        marker = f"{spec.label}.{secrets.token_hex(8)}"
        try:
            data = self._launcher.command_for(spec, {**spec.env, MARKER_VAR: marker})
        except SpawnError as exc:
            return Command(marker, None, str(exc))
        return Command(marker, data)

    async def start(self, spec: ProcessSpec, command: Command | None = None) -> RunningProcess:
        """Spawn and arm every limit; a model that cannot start still yields a
        RunningProcess, whose ``wait()`` reports ``spawn_error``. The output files
        may appear a moment later (the jail opens them): readers allow that.
        ``command``: ``self.command(spec)``, if it was made ahead."""
        command = command or self.command(spec)
        if command.data is None:
            return RunningProcess(spec, spawn_error=command.error)
        try:
            launched = self._launcher.launch(spec, command.data)
        except SpawnError as exc:
            return RunningProcess(spec, spawn_error=str(exc))
        proc = RunningProcess(
            spec, launched=launched, marker=command.marker, sample_seconds=self._sample_seconds,
            chores=self.chores, disk=self.disk, isolation=self.isolation.protections,
        )  # fmt: skip
        self._schedule_refill(proc)
        return proc

    async def build(self, spec: ProcessSpec) -> ProcessResult:
        """Run one installer step of an environment build to its end, in a jail of the
        build plan (a jail made for it: builds keep no standby). Cancelling kills it."""
        marker = f"{spec.label}.{secrets.token_hex(8)}"
        if self._builder is None:
            support, spawner = self._launcher.support, self._launcher.spawner
            plan = jail_plan(self.builds, *self._build_plan, spawner.python)
            self._builder = Launcher(support, spawner, self.builds, plan, 0)
        try:
            data = self._builder.command_for(spec, {**spec.env, MARKER_VAR: marker})
            launched = self._builder.launch(spec, data)
        except SpawnError as exc:
            return await RunningProcess(spec, spawn_error=str(exc)).wait()
        proc = RunningProcess(
            spec, launched=launched, marker=marker, sample_seconds=self._sample_seconds,
            chores=self.chores, isolation=self.builds.protections,
        )  # fmt: skip
        return await proc.wait()

    def kill_builds(self, prefix: str) -> int:
        """Kill what is left of builds whose label starts with ``prefix`` (a killed
        daemon's: their marker and their cgroups say so); how many processes."""
        killed = kill_marked(set(), prefix=prefix)
        return killed + kill_leftovers(None, None, [str(g) for g in groups_named(prefix)], None)

    def _schedule_refill(self, proc: RunningProcess) -> None:
        """Replace the used standby when the run ends (its making would compete with the
        model for CPU), or at once when none is left for the next run."""
        if self._launcher.ready == 0:
            self.chores.later(self._launcher.refill)
        elif proc._task is not None:
            loop = asyncio.get_running_loop()
            # After the run's own bookkeeping: its waiter resumes before this fires.
            proc._task.add_done_callback(
                lambda _: loop.call_later(
                    REFILL_DELAY_SECONDS, self.chores.later, self._launcher.refill
                )
            )

    def close(self) -> None:
        """Kill the idle standbys and the zygote, then finish pending clean-up."""
        _close(self._launcher, self.chores, self.disk)


def _close(launcher: Launcher, chores: Chores, disk: DiskWatch) -> None:
    launcher.close()
    chores.close()
    launcher.spawner.close()
    disk.close()


__all__ += ["Isolation"]
