"""Turning a ``ProcessSpec`` into a model running in its jail, the cheapest correct way.

Every model is started by the jail (``runs/jail``), never by ``preexec_fn``: the
daemon is multi-threaded and running Python between fork and exec can deadlock.
What is expensive happens ahead, in *standby* jails: joining a cgroup (the kernel
waits for an RCU grace period, ~2-8 ms), entering namespaces and building the
model's view (~1 ms). Each standby then blocks on its pipe; a run hands one its
command (argv, environment, files, the run's paths and rlimits, in ``marshal``'s
format: see ``command``) with one write, and the next standby is prepared while the
model runs. Without a ready standby, one is made for the run and handed the command
at once: the same jail, its preparation on the run's path.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import marshal
import math
import os
import resource
import shutil
import stat
import threading
import time
from dataclasses import dataclass
from typing import Any

from orchestrator.models import Limits
from orchestrator.runs.access import spec_access
from orchestrator.runs.cgroups import MIB, CgroupSupport, RunCgroup, remove_stale_standbys
from orchestrator.runs.isolation import Isolation
from orchestrator.runs.jail.view import beneath
from orchestrator.runs.process import ProcessSpec
from orchestrator.runs.spawner import Child, Spawner

log = logging.getLogger(__name__)


class SpawnError(Exception):
    """The model could not be started at all (reported, never raised to callers)."""


class DeadStandby(OSError):
    """A standby exited before its command: ``str()`` is the jail's own reason."""


@dataclass(frozen=True)
class Launched:
    child: Child
    group: RunCgroup | None
    started: float  # time.monotonic() when the model was handed over
    report: int
    """Read end of the jail's report pipe (see ``JailReport``); the caller closes it."""


@dataclass(frozen=True)
class JailReport:
    """What the jail said: the CPU it used before ``exec``, or why it did not exec."""

    cpu_seconds: float = 0.0
    maxrss_kib: int = 0
    error: str | None = None
    exec_failed: bool = False
    steps: tuple[tuple[str, float], ...] = ()
    """That CPU step by step (clone, cgroup, view, ...), when the plan asked for it."""
    keeper: int = 0
    """The pid of the process that held the jail's memory through ``exec`` (a child of
    the daemon's to reap: ``sysc.MemoryKeeper``), 0 if none."""

    @classmethod
    def read(cls, fd: int) -> JailReport:
        """Non-blocking: whatever the jail wrote before it exec'd or exited."""
        chunks = []
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        merged: dict[str, Any] = {}
        for line in b"".join(chunks).splitlines():
            with contextlib.suppress(ValueError):
                merged.update(json.loads(line))
        return cls(
            float(merged.get("cpu", 0.0)),
            int(merged.get("maxrss", 0)),
            merged.get("error"),
            bool(merged.get("exec_failed")),
            tuple((str(step), float(cpu)) for step, cpu in merged.get("steps", ())),
            int(merged.get("keeper", 0)),
        )

    @property
    def spawn_error(self) -> str | None:
        if self.error is None:
            return None
        return self.error if self.exec_failed else f"the jail could not be set up: {self.error}"


class Launcher:
    """Starts runs in jails built from ``plan``, inside a cgroup when ``support``."""

    def __init__(
        self,
        support: CgroupSupport | None,
        spawner: Spawner,
        isolation: Isolation,
        plan: dict[str, Any],
        standby: int,
    ) -> None:
        self.support, self.spawner, self.isolation, self.plan = support, spawner, isolation, plan
        self._target = standby if isolation.refusal is None else 0
        self._standbys: list[Standby] = []
        self._lock = threading.Lock()
        """Guards the pool: refills run on the chores thread, launches on the loop."""
        self._closed = False
        self._recent = Limits()
        """The limits of the last run: the next standby's group is prepared with them."""
        self._serial = 0
        self._covered = tuple(plan.get("read_rules") or ())
        """Trees every standby's view and rules already hold (the system, the interpreter)."""
        if support is not None:
            remove_stale_standbys(support)

    def command_for(self, spec: ProcessSpec, env: dict[str, str]) -> bytes:
        """The run's command for its jail, with ``env``: all of a launch that needs no
        process, so it can be made before a slot frees. Raises ``SpawnError`` when the
        model cannot be started (no such entrypoint, models refused here)."""
        if self.isolation.refusal is not None:
            raise SpawnError(self.isolation.refusal)
        argv = [resolve_entrypoint(spec), *spec.argv[1:]]
        return command(spec, argv, env, self._covered, self.plan.get("hide"))

    def launch(self, spec: ProcessSpec, data: bytes) -> Launched:
        """Start the model with its command ``data``; raises ``SpawnError`` when it
        cannot be started."""
        if self.isolation.refusal is not None:
            raise SpawnError(self.isolation.refusal)
        return self._from_standby(spec, data) or self._direct(spec, data)

    @property
    def ready(self) -> int:
        """Standby jails waiting (prepared or still preparing)."""
        return len(self._standbys)

    def refill(self) -> None:
        """Top the standby pool up; slow (a clone, two cgroup mkdirs, a view), so off the loop."""
        while True:
            with self._lock:
                if self._closed or len(self._standbys) >= self._target:
                    return
                self._serial += 1
                serial = self._serial
            try:
                group = self._group(f"standby-{os.getpid()}-{serial}", self._recent)
                standby = Standby.create(self.spawner, self.plan, self._own(serial, group), group)
            except OSError as exc:
                log.warning("could not prepare a standby jail: %s", exc)
                return
            with self._lock:
                if not self._closed:
                    self._standbys.append(standby)
                    continue
            standby.discard()  # closed while it was being made
            return

    def close(self) -> None:
        with self._lock:
            self._closed = True
            standbys, self._standbys = self._standbys, []
        for standby in standbys:
            standby.discard()

    def _from_standby(self, spec: ProcessSpec, data: bytes) -> Launched | None:
        with self._lock:
            if not self._standbys:
                return None
            self._recent = spec.limits
            standby = self._standbys.pop(0)
        try:
            return standby.launch(spec, data)
        except OSError as exc:
            log.warning("standby jail unusable (%s), starting one for the run", exc)
            standby.discard()
            return None

    def _direct(self, spec: ProcessSpec, data: bytes) -> Launched:
        """A jail made for this run (its cgroup named after it), handed the command at once."""
        with self._lock:
            self._serial += 1
            serial = self._serial
        group = self._cgroup_for(spec)
        try:
            standby = Standby.create(self.spawner, self.plan, self._own(serial, group), group)
            return standby.launch(spec, data)
        except DeadStandby as exc:
            raise SpawnError(str(exc)) from None
        except OSError as exc:
            if group is not None:
                group.remove()
            raise SpawnError(f"could not start the jail: {exc}") from None

    def _own(self, serial: int, group: RunCgroup | None) -> dict[str, Any]:
        """What a standby's plan holds of its own: its cgroup, peak counter and uid."""
        own: dict[str, Any] = {"cgroups": group.dirs if group else []}
        if group is not None and not group.support.v2 and os.geteuid() == 0:
            own["peak_file"] = f"{group.memory_dir}/memory.max_usage_in_bytes"
        if self.isolation.uid_range is not None:
            first, last = self.isolation.uid_range
            own["uid"] = own["gid"] = first + serial % (last - first + 1)
        return own

    def _group(self, name: str, limits: Limits) -> RunCgroup | None:
        return RunCgroup.create(self.support, name, limits) if self.support else None

    def _cgroup_for(self, spec: ProcessSpec) -> RunCgroup | None:
        """The run's cgroup; a failure here degrades this run to sampling, not to an error."""
        if self.support is None:
            return None
        try:
            return RunCgroup.create(self.support, spec.label, spec.limits)
        except OSError as exc:
            log.warning("run %s: no cgroup (%s), falling back to sampling", spec.label, exc)
            return None


class Standby:
    """A jail already in its cgroup and view, waiting on ``commands`` for its run.

    If the daemon dies the pipe closes and the standby exits on EOF.
    """

    def __init__(self, group: RunCgroup | None, child: Child, commands: int, report: int) -> None:
        self.group, self.child, self.commands, self.report = group, child, commands, report

    @classmethod
    def create(
        cls, spawner: Spawner, plan: dict[str, Any], own: dict[str, Any], group: RunCgroup | None
    ) -> Standby:
        try:
            child, commands, report = spawner.standby(plan, own)
        except OSError:
            if group is not None:
                group.remove()
            raise
        return cls(group, child, commands, report)

    def launch(self, spec: ProcessSpec, data: bytes) -> Launched:
        if self.child.poll() is not None:
            report = JailReport.read(self.report)
            raise DeadStandby(report.spawn_error or f"the jail exited ({self.child.returncode})")
        # The group keeps its standby name: renaming it to the run's would cost two
        # reads and two renames on every run's critical path; the run records the path.
        if self.group is not None:
            self.group.apply_limits(spec.limits)
        started = time.monotonic()
        fd, self.commands = self.commands, -1
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except BrokenPipeError:  # it gave up while we wrote: it said why before it exited
            report = JailReport.read(self.report)
            raise DeadStandby(report.spawn_error or "the jail exited before its run") from None
        finally:
            os.close(fd)  # EOF ends the command
        return Launched(self.child, self.group, started, self.report)

    def discard(self) -> None:
        for fd in (self.commands, self.report):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.child.kill()
        self.child.wait()
        if self.group is not None:
            self.group.remove()


def command(
    spec: ProcessSpec,
    argv: list[str],
    env: dict[str, str],
    covered: tuple[str, ...] = (),
    hidden: str | None = None,
) -> bytes:
    """The run's half of the jail's work, as ``marshal`` data.

    ``marshal`` rather than JSON: the jail runs the daemon's own interpreter, and in
    a standby (a fresh copy-on-write clone) the JSON codec's first use cost ~0.23 ms of
    CPU and ~90 page faults, so it was warmed ahead; ``marshal`` needs about half, and
    no warming: the jail's CPU fell by ~0.27 ms per run (``scripts/bench_sandbox.py``).

    Paths are absolute (``Access``'s are made so) because the jail opens them after its
    ``chdir``, where Popen would have opened them from the daemon's working directory. Each
    bind names the path the model sees and the real one (symlinks resolved),
    since the jail resolves sources outside the model's view. Read paths the
    shared plan already covers (``covered``, unless under the ``hidden`` home)
    need neither a bind nor a rule of their own.
    """
    access = spec.access or spec_access(spec)
    folder = access.folder
    reads = {}
    for path in access.read:
        if not _covered(path, covered, hidden) and (found := _real(path)) is not None:
            reads[path] = found
    binds: list[tuple[str, str | None, bool]] = [(folder, _real(folder), True)]
    for path in (*access.write, *access.write_files):  # inside the folder: its bind has them
        if not beneath(path, folder) and (found := _real(path)) is not None:
            binds.append((path, found, True))
    binds += [(p, source, False) for p, source in reads.items()]
    stdin = os.path.abspath(spec.stdin) if spec.stdin is not None else None
    return marshal.dumps(
        {
            "argv": argv,
            "env": {**env, **dict(access.env)},
            "cwd": os.path.abspath(spec.cwd),
            "stdin": stdin,
            "stdout": os.path.abspath(spec.stdout),
            "stderr": os.path.abspath(spec.stderr),
            "rlimits": [[r, soft, hard] for r, (soft, hard) in rlimits(spec.limits).items()],
            "binds": binds,
            "read": list(reads),
            "readable": [source for p, source in reads.items() if beneath(p, folder)],
            "write": list(access.write),
            "write_files": list(access.write_files),
        }
    )


def _real(path: str) -> str | None:
    """``os.path.realpath`` at a fraction of its cost on a run's path (its folders are
    real ones, their parents the same run after run); None if ``path`` is missing.
    A path that does not exist yet (an output file) is taken as it will be made."""
    try:
        if not stat.S_ISLNK(os.lstat(path).st_mode):
            return os.path.join(_real_folder(os.path.dirname(path)), os.path.basename(path))
    except FileNotFoundError:
        if os.path.isdir(os.path.dirname(path)):
            return os.path.join(_real_folder(os.path.dirname(path)), os.path.basename(path))
        return None
    return os.path.realpath(path)


@functools.lru_cache(maxsize=256)
def _real_folder(path: str) -> str:
    """``os.path.realpath`` of a folder, from its parent's (cached: a run's folder shares
    its parents with every other run) when the folder itself is no link: one ``lstat``
    where ``realpath`` takes one per component."""
    parent = os.path.dirname(path)
    with contextlib.suppress(OSError):
        if parent != path and not stat.S_ISLNK(os.lstat(path).st_mode):
            return os.path.join(_real_folder(parent), os.path.basename(path))
    return os.path.realpath(path)


def _covered(path: str, covered: tuple[str, ...], hidden: str | None) -> bool:
    if hidden is not None and beneath(path, hidden):
        return False
    return any(beneath(path, folder) for folder in covered)


def resolve_entrypoint(spec: ProcessSpec) -> str:
    """The entrypoint's absolute path, checked now so a typo is a spawn error, not exit 127."""
    if not spec.argv:
        raise SpawnError("empty command")
    if not os.path.isdir(spec.cwd):
        raise SpawnError(f"working directory {spec.cwd} does not exist")
    if spec.stdin is not None and not os.path.isfile(spec.stdin):
        raise SpawnError(f"input file {spec.stdin} does not exist")
    for folder in {os.path.dirname(os.path.abspath(p)) for p in (spec.stdout, spec.stderr)}:
        if not os.path.isdir(folder):
            raise SpawnError(f"output directory {folder} does not exist")
    name = spec.argv[0]
    if "/" in name:
        path = os.path.join(spec.cwd, name)
    elif found := shutil.which(name, path=spec.env.get("PATH", os.defpath)):
        path = found
    else:
        raise SpawnError(f"entrypoint {name} not found on PATH")
    if not os.path.isfile(path):
        raise SpawnError(f"entrypoint {name} not found")
    if not os.access(path, os.X_OK):
        raise SpawnError(f"entrypoint {name} is not executable")
    return os.path.abspath(path)  # exec happens after the chdir into cwd


def rlimits(limits: Limits) -> dict[int, tuple[int, int]]:
    """RLIMIT_CPU soft S / hard S+1: SIGXCPU first, SIGKILL if it is ignored."""
    out = {}
    if limits.cpu_seconds is not None:
        soft = max(1, math.ceil(limits.cpu_seconds))
        out[resource.RLIMIT_CPU] = (soft, soft + 1)
    if limits.output_mb is not None:
        size = limits.output_mb * MIB + 1
        out[resource.RLIMIT_FSIZE] = (size, size)
    if limits.open_files is not None:
        out[resource.RLIMIT_NOFILE] = (limits.open_files, limits.open_files)
    return out
