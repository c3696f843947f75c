"""Turning a ``ProcessSpec`` into a running process, the cheapest correct way.

Per-process limits (CPU time, file size, open files) are rlimits set by an exec
wrapper, never ``preexec_fn``: the daemon is multi-threaded and running Python
between fork and exec can deadlock. The cgroup must be joined before the model's
first instruction, hence a ``/bin/sh`` that joins and execs.

Joining a cgroup is the expensive part: the kernel waits for an RCU grace period
(``cgroup_threadgroup_rwsem``), about 8 ms on an idle host, more than the whole
spawn budget. So the launcher keeps *standby* shells that already sit in a fresh
cgroup, blocked reading a pipe; a run hands one its command (cwd, stdio,
``ulimit``, a clean environment, ``exec``) with a single write, and the next
standby joins its group while the model runs. Without a standby (no cgroup, or
none ready) the model is spawned by Popen through ``sh`` (join) and ``prlimit``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from orchestrator.models import Limits
from orchestrator.runs.cgroups import MIB, CgroupSupport, RunCgroup, remove_stale_standbys
from orchestrator.runs.process import ProcessSpec

log = logging.getLogger(__name__)

_PRLIMIT_FLAGS = {
    resource.RLIMIT_CPU: "--cpu",
    resource.RLIMIT_FSIZE: "--fsize",
    resource.RLIMIT_NOFILE: "--nofile",
}
_ULIMIT_FLAGS = {
    resource.RLIMIT_CPU: "-t",
    resource.RLIMIT_FSIZE: "-f",
    resource.RLIMIT_NOFILE: "-n",
}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SpawnError(Exception):
    """The model could not be started at all (reported, never raised to callers)."""


@dataclass(frozen=True)
class Launched:
    popen: subprocess.Popen[bytes]
    group: RunCgroup | None
    started: float  # time.monotonic() when the model was handed over


class Launcher:
    """Spawns runs inside a cgroup (when ``support``) under prlimit (when found)."""

    def __init__(self, support: CgroupSupport | None, prlimit: str | None, standby: int) -> None:
        self.support, self.prlimit = support, prlimit
        self._target = standby if support else 0
        self._standbys: list[Standby] = []
        self._lock = threading.Lock()
        """Guards the pool: refills run on the chores thread, launches on the loop."""
        self._closed = False
        self._recent = Limits()
        """The limits of the last run: the next standby's group is prepared with them."""
        self._serial = 0
        if support is not None:
            remove_stale_standbys(support)

    def launch(self, spec: ProcessSpec, env: dict[str, str]) -> Launched:
        """Start the model; raises ``SpawnError`` when it cannot be started."""
        argv = [resolve_entrypoint(spec), *spec.argv[1:]]
        return self._from_standby(spec, argv, env) or self._direct(spec, argv, env)

    @property
    def ready(self) -> int:
        """Standby launchers waiting (joined or still joining)."""
        return len(self._standbys)

    def refill(self) -> None:
        """Top the standby pool up; slow (a fork, two cgroup mkdirs), so off the loop."""
        while self.support is not None:
            with self._lock:
                if self._closed or len(self._standbys) >= self._target:
                    return
                self._serial += 1
                name = f"standby-{os.getpid()}-{self._serial}"
            try:
                standby = Standby.create(self.support, name, self._recent)
            except OSError as exc:
                log.warning("could not prepare a standby launcher: %s", exc)
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

    def _from_standby(
        self, spec: ProcessSpec, argv: list[str], env: dict[str, str]
    ) -> Launched | None:
        if not self._standbys or not all(_NAME.fullmatch(name) for name in env):
            return None  # a name the shell cannot export: take the Popen path
        with self._lock:
            if not self._standbys:
                return None
            self._recent = spec.limits
            standby = self._standbys.pop(0)
        try:
            return standby.launch(spec, argv, env)
        except OSError as exc:
            log.warning("standby launcher unusable (%s), spawning directly", exc)
            standby.discard()
            return None

    def _direct(self, spec: ProcessSpec, argv: list[str], env: dict[str, str]) -> Launched:
        """Popen through at most ``sh`` (cgroup join) and ``prlimit`` (rlimits)."""
        flags = prlimit_flags(spec.limits)
        if flags and self.prlimit:
            argv = [self.prlimit, *flags, "--", *argv]
        group = self._cgroup_for(spec)
        if group is not None:
            argv = [*group.join_prefix(), *argv]
        started = time.monotonic()
        try:
            popen = spawn(argv, spec, env)
        except OSError as exc:
            if group is not None:
                group.remove()
            raise SpawnError(f"{spec.argv[0]}: {exc.strerror or exc}") from None
        if flags and not self.prlimit:
            apply_rlimits(popen.pid, spec.limits)
        return Launched(popen, group, started)

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
    """A ``/bin/sh`` already inside a fresh cgroup, sourcing its command from a pipe.

    It was started with an empty environment, ``cwd=/``, its own process group and
    nothing else open, so after the script's ``cd``, redirections and ``export``s
    the model sees what ``Popen(cwd=, env=, stdin=, stdout=, stderr=)`` would give.
    If the daemon dies the pipe closes and the shell exits on EOF.
    """

    def __init__(self, group: RunCgroup, popen: subprocess.Popen[bytes], fd: int) -> None:
        self.group, self.popen, self.fd = group, popen, fd

    @classmethod
    def create(cls, support: CgroupSupport, name: str, limits: Limits) -> Standby:
        """The pipe is the shell's stdin; the script's own ``exec 0<...`` replaces it."""
        group = RunCgroup.create(support, name, limits)
        read, write = os.pipe()
        try:
            script = " && ".join([*group.join_steps(), ". /proc/self/fd/0"])
            popen = subprocess.Popen(
                ["/bin/sh", "-c", script, "orch-standby"], env={}, cwd="/", stdin=read,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, process_group=0,
            )  # fmt: skip
        except OSError:
            os.close(write)
            group.remove()
            raise
        finally:
            os.close(read)
        return cls(group, popen, write)

    def launch(self, spec: ProcessSpec, argv: list[str], env: dict[str, str]) -> Launched:
        if self.popen.poll() is not None:
            raise OSError(f"standby shell exited with {self.popen.returncode}")
        # The group keeps its standby name: renaming it to the run's would cost two
        # reads and two renames on every run's critical path; the run records the path.
        self.group.apply_limits(spec.limits)
        data = _script(spec, argv, env)
        started = time.monotonic()
        with open(self.fd, "wb", closefd=True) as pipe:  # EOF ends the sourced script
            self.fd = -1
            pipe.write(data)
        return Launched(self.popen, self.group, started)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()
        self.group.remove()


def _script(spec: ProcessSpec, argv: list[str], env: dict[str, str]) -> bytes:
    """One ``&&`` chain, parsed whole before it runs; any failure ends the shell.

    Paths are made absolute here because the shell opens them after its ``cd``,
    where Popen would have opened them from the daemon's working directory.
    """

    def q(path: Path | str) -> str:
        return shlex.quote(str(Path(path).absolute()) if isinstance(path, Path) else path)

    stdin = q(spec.stdin) if spec.stdin is not None else "/dev/null"
    err = "2>&1" if spec.stderr == spec.stdout else f"2>{q(spec.stderr)}"
    steps = [
        f"cd -- {q(spec.cwd)}",
        f"exec 0<{stdin} 1>{q(spec.stdout)} {err}",
        *_ulimits(spec.limits),
        "unset OLDPWD PWD",
        *(f"export {shlex.quote(f'{name}={value}')}" for name, value in env.items()),
        "exec " + " ".join(shlex.quote(arg) for arg in argv),
    ]
    return (" && ".join(steps) + "\n").encode()


def _ulimits(limits: Limits) -> list[str]:
    """The shell's ``ulimit`` sets the same rlimits as prlimit, without another exec.

    Hard before soft (a soft above the old hard is refused); file size counts
    512-byte blocks, so its cap is the limit plus one block instead of one byte.
    """
    steps = []
    for resource_id, (soft, hard) in _rlimits(limits).items():
        flag = _ULIMIT_FLAGS[resource_id]
        if resource_id == resource.RLIMIT_FSIZE:
            soft = hard = -(-soft // 512)
        steps.append(f"ulimit {flag} {hard}")
        if soft != hard:
            steps.append(f"ulimit -S {flag} {soft}")
    return steps


def resolve_entrypoint(spec: ProcessSpec) -> str:
    """The entrypoint's absolute path, checked now so a typo is a spawn error, not exit 127."""
    if not spec.argv:
        raise SpawnError("empty command")
    if not spec.cwd.is_dir():
        raise SpawnError(f"working directory {spec.cwd} does not exist")
    if spec.stdin is not None and not spec.stdin.is_file():
        raise SpawnError(f"input file {spec.stdin} does not exist")
    for output in {spec.stdout, spec.stderr}:
        if not output.parent.is_dir():
            raise SpawnError(f"output directory {output.parent} does not exist")
    name = spec.argv[0]
    if "/" in name:
        path = spec.cwd / name
    elif found := shutil.which(name, path=spec.env.get("PATH", os.defpath)):
        path = Path(found)
    else:
        raise SpawnError(f"entrypoint {name} not found on PATH")
    if not path.is_file():
        raise SpawnError(f"entrypoint {name} not found")
    if not os.access(path, os.X_OK):
        raise SpawnError(f"entrypoint {name} is not executable")
    return str(path.absolute())  # exec happens after the chdir into cwd


def spawn(argv: list[str], spec: ProcessSpec, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Output goes straight to files: a chatty model never passes through our memory."""
    with contextlib.ExitStack() as files:
        stdin = files.enter_context(open(spec.stdin, "rb")) if spec.stdin else subprocess.DEVNULL
        out = files.enter_context(open(spec.stdout, "wb"))
        err = out if spec.stderr == spec.stdout else files.enter_context(open(spec.stderr, "wb"))
        return subprocess.Popen(
            argv, cwd=spec.cwd, env=env, stdin=stdin, stdout=out, stderr=err,
            close_fds=True, process_group=0,
        )  # fmt: skip


def prlimit_flags(limits: Limits) -> list[str]:
    """``prlimit`` options for the limits that are set; empty means no wrapper exec at all."""
    return [f"{_PRLIMIT_FLAGS[r]}={soft}:{hard}" for r, (soft, hard) in _rlimits(limits).items()]


def _rlimits(limits: Limits) -> dict[int, tuple[int, int]]:
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


def apply_rlimits(pid: int, limits: Limits) -> None:
    """Fallback when prlimit is missing. Racy by nature: the model may already run (and
    fork children that keep the daemon's limits) before these land."""
    try:
        process = psutil.Process(pid)
        for resource_id, value in _rlimits(limits).items():
            process.rlimit(resource_id, value)
    except (psutil.Error, OSError) as exc:
        log.warning("could not set rlimits on %s: %s", pid, exc)
