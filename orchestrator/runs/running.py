"""One model process tree, supervised from the moment it exists until nothing of it is left.

The end of a run is noticed through a pidfd on the event loop (no asyncio child
watcher); every survivor is then killed *before* the main process is reaped, so
its pid and process group number cannot be reused while we still signal them.
Limits are checked by the kernel where it can (cgroup, rlimits), else sampled
here; ``disk_mb`` by the disk watch thread. After a disk breach the run's files
are cut back before its result is returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import resource
import signal
import threading
import time
from collections.abc import Callable

from orchestrator.models import Limits
from orchestrator.runs.access import spec_access
from orchestrator.runs.cgroups import MIB
from orchestrator.runs.chores import Chores
from orchestrator.runs.disk import DiskWatch, TooMany, Watched, cut_back, usage_bytes
from orchestrator.runs.launch import JailReport, Launched
from orchestrator.runs.process import ProcessResult, ProcessSpec
from orchestrator.runs.proctree import SWEEP_SECONDS, ProcessTree, cpu_seconds

log = logging.getLogger(__name__)
CORES = os.cpu_count() or 1

CGROUP_FIRST_SAMPLE_SECONDS = 0.25
"""With a cgroup the kernel enforces memory and tasks itself: a sample only ends a
breached tree sooner (a child the OOM killer took, a refused fork, stdout and stderr
together over ``output_mb``), and the final checks record every breach anyway. So the
first sample waits a quarter second: a shorter run never pays one (a wake-up of the
loop and three cgroup and file reads, ~0.17 ms of the daemon's CPU on the benchmark
VM), and a breached one is ended at most that much later."""

FINAL_WALK_BUDGET = 2000
"""Entries a run's final disk check may walk on the loop; a bigger tree is walked on a thread."""


class RunningProcess:
    """One spawned tree, supervised from the moment it exists.

    Exit watching, the wall-clock timer and the sampler are armed in the
    constructor, so limits hold even before anyone calls ``wait()``.
    """

    def __init__(
        self,
        spec: ProcessSpec,
        *,
        launched: Launched | None = None,
        marker: str = "",
        sample_seconds: float = 0.05,
        spawn_error: str | None = None,
        chores: Chores | None = None,
        disk: DiskWatch | None = None,
        isolation: tuple[str, ...] = (),
    ) -> None:
        self.spec = spec
        self.isolation = isolation if launched is not None else ()
        """The protections this run's model runs under."""
        child = launched.child if launched else None
        cgroup = launched.group if launched else None
        self.pid: int | None = child.pid if child else None
        self.pgid: int | None = self.pid
        self.cgroups: list[str] = cgroup.dirs if cgroup else []
        self._child, self._cgroup, self._spawn_error = child, cgroup, spawn_error
        self._report = launched.report if launched else None
        self._keeper_done = False
        """Whether the jail's memory keeper was reaped or handed to be (``_let_keeper_go``)."""
        self.jail = JailReport()
        """What the jail said before it exec'd; read once the run has ended."""
        self._chores = chores
        self._started = launched.started if launched else time.monotonic()
        self._ended: float | None = None
        self._breach: tuple[str, float | None] | None = None
        self._canceled = False
        self._reaped = False
        self._pidfd: int | None = None
        self._handles: list[asyncio.Handle] = []
        self._task: asyncio.Task[ProcessResult] | None = None
        self._gone: Callable[[], None] | None = None
        """Told the moment no process of the run is left (``wait``'s ``gone``)."""
        self._disk: Watched | None = None
        if child is None:
            return
        self._tree = None if cgroup else ProcessTree(child.pid, marker)
        self._sample_seconds = sample_seconds
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[None] = self._loop.create_future()
        self._watch_exit()
        timeout = spec.limits.timeout_seconds
        if timeout is not None:
            remaining = max(0.0, timeout - (time.monotonic() - self._started))
            self._handles.append(self._loop.call_later(remaining, self._on_timeout))
        if disk is not None and spec.limits.disk_mb is not None:
            self._disk = disk.watch(self._disk_paths(), spec.limits.disk_mb, self._disk_breached)
        cpu = spec.limits.cpu_seconds
        self._cpu_from = None if cpu is None else self._started + cpu / CORES
        """When the tree could first have used ``cpu_seconds`` on every core at once: its
        CPU is only counted from then on (most runs never get there)."""
        # exec copies the spawner's RSS high-water mark into the child's ru_maxrss
        self._spawner_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        first = (
            max(CGROUP_FIRST_SAMPLE_SECONDS, sample_seconds)
            if cgroup
            else min(0.005, sample_seconds)
        )
        self._sampler = self._loop.call_later(first, self._sample_tick, first)
        self._task = self._loop.create_task(self._supervise())

    async def wait(self, gone: Callable[[], None] | None = None) -> ProcessResult:
        """The result once the whole tree is gone; cancelling the wait kills the run.

        ``gone`` is called as soon as the tree is reaped, before its final checks and
        its result: the slot it held can go to the next run meanwhile.
        """
        if self._task is None:
            return ProcessResult(None, None, 0.0, 0.0, 0.0, None, None, False, self._spawn_error)
        if gone is not None:
            if self._reaped:
                gone()
            else:
                self._gone = gone
        try:
            return await asyncio.shield(self._task)
        except asyncio.CancelledError:
            self.cancel(grace_seconds=0)
            with contextlib.suppress(BaseException):
                await self._task
            raise

    def cancel(self, grace_seconds: float = 2.0) -> None:
        """Stop the run: SIGTERM then SIGKILL after the grace (0 = SIGKILL now). Idempotent.

        A model that has already exited, even if the loop has not yet seen its pidfd turn
        readable, is not canceled: it ended on its own, and its exit decides the run (a
        cancel a few milliseconds late turned 17 of 40 finished runs, exit 0 and output
        written, into canceled ones)."""
        if self._task is None or self._canceled or self._exited.done() or self._has_exited():
            return
        self._canceled = True
        if grace_seconds <= 0:
            self._signal_all(signal.SIGKILL)
            return
        self._signal_all(signal.SIGTERM)
        self._handles.append(self._loop.call_later(grace_seconds, self._signal_all, signal.SIGKILL))

    # -- exit watching -------------------------------------------------------------

    def _has_exited(self) -> bool:
        """Whether the model's process has ended (a zombie not reaped yet counts), asked
        of the kernel without reaping it: the exit watch still sees and reaps it."""
        if self.pid is None:
            return True
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:  # reaped already
            return True

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
            _, sig, _, maxrss_kib = self._reap()
            self._conclude(maxrss_kib, sig)
            raise
        code, sig, cpu, maxrss_kib = self._reap()
        try:
            if self._gone is not None:
                self._gone()
                await asyncio.sleep(0)  # the run that takes the slot spawns before the checks
        finally:
            report, peak = self._conclude(maxrss_kib, sig)
        await self._check_disk()
        ended = self._ended or time.monotonic()
        breach, measured = self._breach or (None, None)
        spawn_error = None if self._canceled else report.spawn_error
        return ProcessResult(
            code, sig, ended - self._started, max(0.0, cpu - report.cpu_seconds), peak,
            breach, measured, self._canceled, spawn_error,
            self.isolation if spawn_error is None else (),
        )  # fmt: skip

    def _conclude(self, maxrss_kib: int, sig: int | None) -> tuple[JailReport, float]:
        """Once reaped: the jail's report, the final checks (and the peak), the cgroup's
        release; whatever happened, so never awaiting."""
        report = self._read_report()
        peak = self._final_checks(maxrss_kib, sig, report)
        self._let_keeper_go()  # before the cgroup's removal: it is one of the group's tasks
        self._release()
        return report, peak

    def _let_keeper_go(self) -> int:
        """Reap the jail's memory keeper (``jail.sysc.MemoryKeeper``, the daemon's child) if
        it has ended; else kill it and have it reaped off the loop (its death frees the
        jail's old memory, ~1 ms). Returns how many tasks it may still count in the run's
        group: 0 or 1. Once per run."""
        if self._keeper_done:
            return 0
        self._keeper_done, keeper = True, self._read_report().keeper
        if keeper <= 0:
            return 0
        try:
            if os.waitid(os.P_PID, keeper, os.WEXITED | os.WNOHANG) is not None:
                return 0
        except ChildProcessError:  # not ours after all: nothing to reap
            return 0
        with contextlib.suppress(ProcessLookupError):
            os.kill(keeper, signal.SIGKILL)
        if self._chores is not None:
            self._chores.later(functools.partial(_reap, keeper))
        else:
            _reap(keeper)
        return 1

    def _read_report(self) -> JailReport:
        """What the jail said before it exec'd (its own CPU) or gave up (why)."""
        if self._report is None:
            return self.jail
        self.jail = JailReport.read(self._report)
        os.close(self._report)
        self._report = None
        return self.jail

    def _stop_watching(self) -> None:
        if self._disk is not None:
            self._disk.stop()
        self._sampler.cancel()  # a handle, not a task: no CancelledError to unwind
        for handle in self._handles:
            handle.cancel()
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)

    async def _sweep(self) -> None:
        """SIGKILL survivors until none is left: group, cgroup, recorded and marked pids.

        The common case costs one counter read: a group charged with one task holds
        only the exited main process (not reaped yet), so nothing survived it (two, while
        the jail's memory keeper is still going: see ``_let_keeper_go``).
        """
        kept = self._let_keeper_go()
        charged = self._cgroup.charged_tasks() if self._cgroup is not None else None
        if charged is not None and charged <= 1 + kept:
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
        assert self.pid is not None and self._child is not None
        try:
            _, status, usage = os.wait4(self.pid, 0)
        except ChildProcessError:  # reaped by someone else: facts are lost
            self._reaped, self._child.returncode = True, -signal.SIGKILL
            return None, None, 0.0, 0
        self._reaped = True
        code = os.waitstatus_to_exitcode(status)
        self._child.returncode = code  # keeps subprocess._cleanup from ever waiting on this pid
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

    def _sample_tick(self, delay: float) -> None:
        """Without a cgroup, early samples come fast (5, 10, 20 ms...): short runs get a peak,
        bombs get caught. With one, the kernel enforces memory and tasks and keeps the peak,
        so sampling starts late (``CGROUP_FIRST_SAMPLE_SECONDS``), then keeps the regular
        pace. A timer, not a task per run: most runs end before their first sample."""
        try:
            self._sample()
        except Exception:  # a sampling bug must not end supervision
            log.exception("run %s: sampling failed", self.spec.label)
        delay = min(delay * 2, self._sample_seconds)
        self._sampler = self._loop.call_later(delay, self._sample_tick, delay)

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
        self._check_cpu(limits)

    def _check_cpu(self, limits: Limits) -> None:
        """``cpu_seconds`` is the run's, all its processes together: the jail's
        ``RLIMIT_CPU`` holds for each process alone, so a run of four busy children used
        four times its limit and succeeded."""
        if limits.cpu_seconds is None or self._cpu_from is None:
            return
        if time.monotonic() < self._cpu_from:
            return
        if self._cgroup is not None:
            used = self._cgroup.cpu_seconds()
            if used is None:
                used = cpu_seconds(self._cgroup.procs())
        elif self._tree is not None:
            used = sum(s.cpu for s in self._tree.scan().values())
        else:
            return
        if used > limits.cpu_seconds:
            self._on_breach("cpu_seconds", used)

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
            try:
                size += os.stat(path).st_size
            except OSError:  # not made: the model never started
                continue
        if size > limits.output_mb * MIB:
            self._on_breach("output_mb", size / MIB)

    def _final_checks(self, maxrss_kib: int, sig: int | None, report: JailReport) -> float:
        """Breaches only visible at the end (a fast OOM, a refused fork); returns peak MiB.

        ru_maxrss counts only when above the jail's own (or, unreported, the daemon's):
        exec records the old address space's high-water mark, so a small model would
        otherwise "peak" at the size of the process it was started from.
        """
        limits = self.spec.limits
        spawner = report.maxrss_kib or self._spawner_maxrss
        peak = maxrss_kib / 1024 if maxrss_kib > spawner else 0.0
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

    def _disk_paths(self) -> tuple[str, ...]:
        access = self.spec.access or spec_access(self.spec)
        return access.disk

    def _disk_breached(self, measured_mb: float) -> None:
        """From the disk watch thread: hand the breach to the loop."""
        with contextlib.suppress(RuntimeError):  # the loop is gone: so is the run
            self._loop.call_soon_threadsafe(self._on_breach, "disk_mb", measured_mb)

    async def _check_disk(self) -> None:
        """The last measure (a run may write fast and exit before a sample), then, after
        a breach, the run's files are cut back before anyone sees its result."""
        limit = self.spec.limits.disk_mb
        if limit is None or self._canceled:
            return
        paths = self._disk_paths()
        if self._breach is None:
            slow = self._disk is not None and self._disk.last_walk_seconds > 0.002
            budget = 0 if slow else FINAL_WALK_BUDGET
            try:
                used = usage_bytes(paths, budget=budget)
            except TooMany:
                used = await asyncio.to_thread(usage_bytes, paths)
            if used > limit * MIB:
                self._breach = ("disk_mb", used / MIB)
        if self._breach is not None and self._breach[0] == "disk_mb":
            access = self.spec.access or spec_access(self.spec)
            await asyncio.to_thread(cut_back, access.write, access.write_files, self.spec.stderr)

    def _on_timeout(self) -> None:
        """The deadline passed, as the loop sees it; but a model that has already exited
        ended on its own, and its exit decides the run. The timer is late only when the
        loop was (a daemon stopped with SIGSTOP, swapped out, or blocked): then it fires
        in the same pass as the exit's pidfd, ahead of it, and a ``sleep 2`` run with an
        8 s timeout was failed as "ran 15.4 s" for a 15 s stall. When it exited is not
        known (no clock records a zombie's end): a model that ended during such a stall
        is its own outcome, since nothing could have stopped it at its deadline."""
        if self._has_exited():
            return
        self._on_breach("timeout_seconds", time.monotonic() - self._started)


def _reap(pid: int) -> None:
    """Wait for a child the daemon does not otherwise watch (a killed memory keeper)."""
    with contextlib.suppress(ChildProcessError):
        os.waitid(os.P_PID, pid, os.WEXITED)
