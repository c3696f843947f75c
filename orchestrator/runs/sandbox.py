"""Spawn one model process tree under limits, watch it, and leave nothing behind.

Containment, strongest first: a per-run cgroup (memory + task limits the kernel
enforces on the whole tree, and a complete list of survivors), else sampling the
tree from /proc every ``sample_seconds`` and killing on breach. CPU time, file
size and open files are rlimits set at exec (see ``launch``); the wall clock is
the daemon's own timer. The end of a run is noticed through a pidfd on the event
loop (no asyncio child watcher); every survivor is then killed *before* the main
process is reaped, so its pid and process group number cannot be reused while
we still signal them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import secrets
import shutil
import signal
import subprocess
import threading
import time
import weakref

from orchestrator.errors import Unavailable
from orchestrator.models import Limits
from orchestrator.runs.cgroups import MIB, RunCgroup, detect
from orchestrator.runs.chores import Chores
from orchestrator.runs.launch import Launcher, SpawnError
from orchestrator.runs.process import ProcessResult, ProcessSpec
from orchestrator.runs.proctree import MARKER_VAR, SWEEP_SECONDS, ProcessTree, kill_leftovers

__all__ = ["ProcessResult", "ProcessSpec", "RunningProcess", "Sandbox", "kill_leftovers"]

log = logging.getLogger(__name__)

REFILL_DELAY_SECONDS = 0.01
"""A used standby is replaced this long after its run ends, off the run's critical path."""


class Sandbox:
    """Starts runs with the best containment the host offers (detected once).

    ``standby`` pre-joined launchers are kept ready when cgroups are used (each an
    idle ``sh``); call ``close()`` at shutdown to drop them.
    """

    def __init__(
        self,
        *,
        sample_seconds: float = 0.05,
        use_cgroups: bool | None = None,
        use_prlimit: bool | None = None,
        standby: int = 2,
    ) -> None:
        self._sample_seconds = sample_seconds
        support = detect() if use_cgroups is not False else None
        if use_cgroups and support is None:
            raise Unavailable("cgroups were requested but this host has no usable cgroup")
        prlimit = shutil.which("prlimit") if use_prlimit is not False else None
        if use_prlimit and prlimit is None:
            raise Unavailable("prlimit was requested but is not installed")
        self._launcher = Launcher(support, prlimit, standby)
        self._launcher.refill()
        self.chores = Chores()
        """Where slow clean-up goes (cgroup removal, standby refills, run ``tmp`` folders)."""
        weakref.finalize(self, _close, self._launcher, self.chores)  # even without close()

    @property
    def containment(self) -> str:
        """'cgroup-v2' | 'cgroup-v1' | 'sampling', for docs and logs."""
        support = self._launcher.support
        return support.kind if support else "sampling"

    async def start(self, spec: ProcessSpec) -> RunningProcess:
        """Spawn and arm every limit; a model that cannot start still yields a
        RunningProcess, whose ``wait()`` reports ``spawn_error``. The output files
        may appear a moment later (a standby shell opens them): readers allow that."""
        marker = f"{spec.label}.{secrets.token_hex(8)}"
        try:
            launched = self._launcher.launch(spec, {**spec.env, MARKER_VAR: marker})
        except SpawnError as exc:
            return RunningProcess(spec, spawn_error=str(exc))
        proc = RunningProcess(
            spec, popen=launched.popen, cgroup=launched.group, marker=marker,
            sample_seconds=self._sample_seconds, started=launched.started, chores=self.chores,
        )  # fmt: skip
        self._schedule_refill(proc)
        return proc

    def _schedule_refill(self, proc: RunningProcess) -> None:
        """Replace the used standby when the run ends (its fork would compete with the
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
        """Kill the idle standby launchers, then finish pending clean-up."""
        _close(self._launcher, self.chores)


class RunningProcess:
    """One spawned tree, supervised from the moment it exists.

    Exit watching, the wall-clock timer and the sampler are armed in the
    constructor, so limits hold even before anyone calls ``wait()``.
    """

    def __init__(
        self,
        spec: ProcessSpec,
        *,
        popen: subprocess.Popen[bytes] | None = None,
        cgroup: RunCgroup | None = None,
        marker: str = "",
        sample_seconds: float = 0.05,
        started: float | None = None,
        spawn_error: str | None = None,
        chores: Chores | None = None,
    ) -> None:
        self.spec = spec
        self.pid: int | None = popen.pid if popen else None
        self.pgid: int | None = self.pid
        self.cgroups: list[str] = [str(d) for d in cgroup.dirs] if cgroup else []
        self._popen, self._cgroup, self._spawn_error = popen, cgroup, spawn_error
        self._chores = chores
        self._started = started if started is not None else time.monotonic()
        self._ended: float | None = None
        self._breach: tuple[str, float | None] | None = None
        self._canceled = False
        self._reaped = False
        self._pidfd: int | None = None
        self._handles: list[asyncio.Handle] = []
        self._task: asyncio.Task[ProcessResult] | None = None
        if popen is None:
            return
        self._tree = None if cgroup else ProcessTree(popen.pid, marker)
        self._sample_seconds = sample_seconds
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[None] = self._loop.create_future()
        self._watch_exit()
        timeout = spec.limits.timeout_seconds
        if timeout is not None:
            remaining = max(0.0, timeout - (time.monotonic() - self._started))
            self._handles.append(self._loop.call_later(remaining, self._on_timeout))
        # exec copies the spawner's RSS high-water mark into the child's ru_maxrss
        self._spawner_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self._sampler = self._loop.create_task(self._sample_loop())
        self._task = self._loop.create_task(self._supervise())

    async def wait(self) -> ProcessResult:
        """The result once the whole tree is gone; cancelling the wait kills the run."""
        if self._task is None:
            return ProcessResult(None, None, 0.0, 0.0, 0.0, None, None, False, self._spawn_error)
        try:
            return await asyncio.shield(self._task)
        except asyncio.CancelledError:
            self.cancel(grace_seconds=0)
            with contextlib.suppress(BaseException):
                await self._task
            raise

    def cancel(self, grace_seconds: float = 2.0) -> None:
        """Stop the run: SIGTERM then SIGKILL after the grace (0 = SIGKILL now). Idempotent."""
        if self._task is None or self._canceled or self._exited.done():
            return
        self._canceled = True
        if grace_seconds <= 0:
            self._signal_all(signal.SIGKILL)
            return
        self._signal_all(signal.SIGTERM)
        self._handles.append(self._loop.call_later(grace_seconds, self._signal_all, signal.SIGKILL))

    # -- exit watching -------------------------------------------------------------

    def _watch_exit(self) -> None:
        """A pidfd turns readable the instant the process exits: prompt, no polling."""
        assert self.pid is not None
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            threading.Thread(target=self._wait_thread, name=f"wait-{self.pid}", daemon=True).start()
            return
        self._loop.add_reader(self._pidfd, self._on_exit)

    def _wait_thread(self) -> None:
        """Fallback without pidfd: WNOWAIT leaves the zombie for the loop to sweep, then reap."""
        assert self.pid is not None
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        with contextlib.suppress(RuntimeError):  # loop already closed
            self._loop.call_soon_threadsafe(self._on_exit)

    def _on_exit(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
        if not self._exited.done():
            self._ended = time.monotonic()
            self._exited.set_result(None)

    # -- supervision -----------------------------------------------------------------

    async def _supervise(self) -> ProcessResult:
        """Wait for the main process, kill what is left, reap, measure, clean up."""
        try:
            await self._exited
            self._stop_watching()
            await self._sweep()
        except BaseException:  # cancelled or a bug: still never leave a process behind
            self._stop_watching()
            self._sweep_now()
            raise
        finally:
            code, sig, cpu, maxrss_kib = self._reap()
            peak = self._final_checks(maxrss_kib, sig)
            self._release()
        ended = self._ended or time.monotonic()
        breach, measured = self._breach or (None, None)
        return ProcessResult(
            code, sig, ended - self._started, cpu, peak, breach, measured, self._canceled, None
        )

    def _stop_watching(self) -> None:
        self._sampler.cancel()
        for handle in self._handles:
            handle.cancel()
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)

    async def _sweep(self) -> None:
        """SIGKILL survivors until none is left: group, cgroup, recorded and marked pids.

        The common case costs one counter read: a group charged with one task holds
        only the exited main process (not reaped yet), so nothing survived it.
        """
        charged = self._cgroup.charged_tasks() if self._cgroup is not None else None
        if charged is not None and charged <= 1:
            return
        deadline = time.monotonic() + SWEEP_SECONDS
        while self._signal_all(signal.SIGKILL):
            if time.monotonic() > deadline:
                log.error(
                    "run %s: processes survive SIGKILL after %ss", self.spec.label, SWEEP_SECONDS
                )
                return
            await asyncio.sleep(0.002)

    def _sweep_now(self) -> None:
        deadline = time.monotonic() + SWEEP_SECONDS
        while self._signal_all(signal.SIGKILL) and time.monotonic() < deadline:
            time.sleep(0.002)

    def _signal_all(self, sig: int) -> set[int]:
        """Signal the whole tree; returns the live non-main pids hit, so sweeps know when to stop.

        Before the main process is reaped its pid (and so the group id) cannot be
        reused, which is why the sweep precedes the reap.
        """
        if self._reaped or self.pid is None:
            return set()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)  # even if it left its own group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)
        hit = self._cgroup.kill_pass(sig) if self._cgroup else set()
        if self._tree is not None:
            hit |= self._tree.kill(sig)
        return hit - {self.pid}

    def _reap(self) -> tuple[int | None, int | None, float, int]:
        """(exit code, signal, cpu seconds, max RSS KiB) from wait4; the pid is free after this."""
        assert self.pid is not None and self._popen is not None
        try:
            _, status, usage = os.wait4(self.pid, 0)
        except ChildProcessError:  # reaped by someone else: facts are lost
            self._reaped, self._popen.returncode = True, -signal.SIGKILL
            return None, None, 0.0, 0
        self._reaped = True
        code = os.waitstatus_to_exitcode(status)
        self._popen.returncode = code  # keeps subprocess._cleanup from ever waiting on this pid
        cpu = usage.ru_utime + usage.ru_stime
        return (
            (code, None, cpu, usage.ru_maxrss) if code >= 0 else (None, -code, cpu, usage.ru_maxrss)
        )

    def _release(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        if self._cgroup is not None:
            # Empty by now (swept); its rmdir waits out an RCU grace period, off the loop.
            if self._chores is not None:
                self._chores.later(self._cgroup.remove)
            else:
                self._cgroup.remove()

    # -- limits ----------------------------------------------------------------------

    async def _sample_loop(self) -> None:
        """Without a cgroup, early samples come fast (5, 10, 20 ms...): short runs get a peak,
        bombs get caught. With one, the kernel enforces memory and tasks and keeps the peak,
        so sampling only backs up the output check, at the regular pace."""
        delay = self._sample_seconds if self._cgroup else min(0.005, self._sample_seconds)
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._sample_seconds)
            try:
                self._sample()
            except Exception:  # a sampling bug must not end supervision
                log.exception("run %s: sampling failed", self.spec.label)

    def _sample(self) -> None:
        limits = self.spec.limits
        if self._cgroup is not None:
            cg = self._cgroup
            if limits.memory_mb is not None and (cg.oom_kills() or 0) > 0:
                self._on_breach("memory", self._cgroup_peak_mb())
            self._check_processes(limits)
        elif self._tree is not None:
            live = [s for s in self._tree.scan().values() if s.state != "Z"]
            rss = sum(s.rss for s in live)
            self._tree.peak_rss = max(self._tree.peak_rss, rss)
            if limits.memory_mb is not None and rss > limits.memory_mb * MIB:
                self._on_breach("memory", rss / MIB)
            tasks = sum(s.threads for s in live)
            if limits.processes is not None and tasks > limits.processes:
                self._on_breach("processes", tasks)
        self._check_output(limits)

    def _check_processes(self, limits: Limits) -> None:
        """pids.max refused a fork (the run asked for one task too many), or count tasks."""
        cg = self._cgroup
        if limits.processes is None or cg is None:
            return
        if cg.pids_dir is not None or cg.support.v2:
            if cg.pids_refused() > 0:
                self._on_breach("processes", limits.processes + 1)
        elif (count := cg.task_count()) > limits.processes:
            self._on_breach("processes", count)

    def _check_output(self, limits: Limits) -> None:
        """RLIMIT_FSIZE is per file and per process; this bounds stdout + stderr together.

        The rlimit is the limit plus one byte, so reaching it means a write was cut.
        """
        if limits.output_mb is None:
            return
        size = 0
        for path in {self.spec.stdout, self.spec.stderr}:
            with contextlib.suppress(OSError):
                size += path.stat().st_size
        if size > limits.output_mb * MIB:
            self._on_breach("output_mb", size / MIB)

    def _final_checks(self, maxrss_kib: int, sig: int | None) -> float:
        """Breaches only visible at the end (a fast OOM, a refused fork); returns peak MiB.

        ru_maxrss counts only when above the daemon's own: exec records the old
        (vfork-shared) address space's high-water mark, so a small model spawned by
        a big daemon would otherwise "peak" at the daemon's size.
        """
        limits = self.spec.limits
        peak = maxrss_kib / 1024 if maxrss_kib > self._spawner_maxrss else 0.0
        if self._cgroup is not None:
            peak = self._cgroup_peak_mb() or peak
            oom = self._cgroup.oom_kills()
            if oom is None:  # old v1 kernel: a SIGKILL we did not send while the limit was hit
                oom = int(sig == signal.SIGKILL and self._cgroup.failcnt() > 0)
            if limits.memory_mb is not None and oom > 0:
                self._on_breach("memory", peak)
            self._check_processes(limits)
        elif self._tree is not None:
            peak = max(peak, self._tree.peak_rss / MIB)
            if limits.memory_mb is not None and peak > limits.memory_mb:
                self._on_breach("memory", peak)
        self._check_output(limits)
        return peak

    def _cgroup_peak_mb(self) -> float:
        peak = self._cgroup.peak_bytes() if self._cgroup else None
        return (peak or 0) / MIB

    def _on_breach(self, kind: str, measured: float | None) -> None:
        """Record the first limit broken (not after a cancel) and kill the tree at once."""
        if self._breach is None and not self._canceled:
            self._breach = (kind, measured)
        self._signal_all(signal.SIGKILL)

    def _on_timeout(self) -> None:
        self._on_breach("timeout_seconds", time.monotonic() - self._started)


def _close(launcher: Launcher, chores: Chores) -> None:
    launcher.close()
    chores.close()
