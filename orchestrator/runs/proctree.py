"""A run's process tree without cgroups, and killing what a crashed daemon left.

Sampling mode has no kernel list of a run's processes, so this module rebuilds
one from /proc on every sample: descendants of the main process, everything seen
before (a reparented orphan is still the run's), and newer processes carrying
the run's marker variable (a ``setsid`` grandchild that escaped between samples).
Identity is (pid, start time) everywhere, so a reused pid is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable

import psutil

from orchestrator.runs.cgroups import kill_cgroup_pass, remove_cgroup

MARKER_VAR = "ORCH_SANDBOX_TOKEN"
"""Injected into every run's environment so sampling can find escaped (setsid) processes."""
SWEEP_SECONDS = 5.0
PAGE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
try:
    with open("/proc/sys/kernel/pid_max") as _f:
        PID_MAX = int(_f.read())
except (OSError, ValueError):
    PID_MAX = 4 * 1024 * 1024


class _Stat:
    """The fields of /proc/<pid>/stat the sampler needs, read in one go."""

    __slots__ = ("cpu", "pgrp", "ppid", "rss", "start", "state", "threads")

    def __init__(self, raw: bytes) -> None:
        f = raw[raw.rindex(b")") + 2 :].split()
        self.state, self.ppid, self.pgrp = f[0].decode(), int(f[1]), int(f[2])
        self.threads, self.start, self.rss = int(f[17]), int(f[19]), int(f[21]) * PAGE
        self.cpu = sum(int(t) for t in f[11:15]) / CLOCK_TICKS
        """Seconds of CPU: its own and that of the children it waited for."""


def cpu_seconds(pids: Iterable[int]) -> float:
    """The CPU the processes ``pids`` used, with that of the children they waited for
    (what ``RLIMIT_CPU`` cannot bound: it holds for each process alone)."""
    return sum(s.cpu for pid in pids if (s := _stat(pid)) is not None)


def _stat(pid: int) -> _Stat | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return _Stat(f.read())
    except (OSError, ValueError, IndexError):
        return None


def _last_pid() -> int | None:
    try:
        with open("/proc/sys/kernel/ns_last_pid", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


class _NewPids:
    """Which pids can belong to processes born since ``first`` was allocated.

    Pids are handed out cyclically, so everything a run starts has a pid in
    (first, ns_last_pid], wrapping at pid_max, until the counter has gone all the
    way round. Reading /proc/<pid>/stat only for those keeps a sample's cost
    proportional to recent activity instead of to every process on the host.
    """

    def __init__(self, first: int) -> None:
        self.first, self.last = first, _last_pid()
        self.travelled = 0 if self.last is None else (self.last - first) % PID_MAX

    def select(self, pids: list[int]) -> list[int]:
        last = _last_pid()
        if last is None or self.last is None:
            return pids
        self.travelled += (last - self.last) % PID_MAX
        self.last = last
        if self.travelled >= PID_MAX - 1024:  # wrapped past our start: anything goes
            return pids
        if self.first <= last:
            return [p for p in pids if self.first <= p <= last]
        return [p for p in pids if p >= self.first or p <= last]


def _proc_table(new: _NewPids) -> dict[int, _Stat]:
    table = {}
    for pid in new.select([int(name) for name in os.listdir("/proc") if name.isdigit()]):
        if (stat := _stat(pid)) is not None:
            table[pid] = stat
    return table


class ProcessTree:
    """A run's processes when there is no cgroup: descendants of the main process,
    every pid seen before (they stay ours after being reparented), and any newer
    process carrying the run's marker (a ``setsid`` child that escaped before a
    sample saw it). Identity is (pid, start time in ticks), so a reused pid is spared.
    """

    def __init__(self, pid: int, marker: str) -> None:
        self.pid = pid
        stat = _stat(pid)
        self.start = stat.start if stat else 0
        self.needle = f"\0{MARKER_VAR}={marker}\0".encode()
        self.seen: dict[int, int] = {}
        self.foreign: set[tuple[int, int]] = set()
        self.peak_rss = 0
        self.new_pids = _NewPids(pid)

    def scan(self) -> dict[int, _Stat]:
        """Descendants are younger than the main process, so only new pids are read."""
        table = _proc_table(self.new_pids)
        roots = [self.pid, *(p for p, s in self.seen.items() if p in table and table[p].start == s)]
        members = _closure(table, roots)
        strays = [
            p for p, s in table.items()
            if p not in members and s.start >= self.start and self._marked(p, s)
        ]  # fmt: skip
        members.update(_closure(table, strays))
        self.seen = {p: s.start for p, s in members.items()}
        return members

    def kill(self, sig: int) -> set[int]:
        hit = set()
        for pid, stat in self.scan().items():
            if stat.state != "Z":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                    hit.add(pid)
        return hit

    def _marked(self, pid: int, stat: _Stat) -> bool:
        key = (pid, stat.start)
        if key in self.foreign:
            return False
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if self.needle in b"\0" + f.read():
                    return True
        except OSError:
            pass
        self.foreign.add(key)
        return False


def _closure(table: dict[int, _Stat], roots: list[int]) -> dict[int, _Stat]:
    children: dict[int, list[int]] = {}
    for pid, stat in table.items():
        children.setdefault(stat.ppid, []).append(pid)
    found: dict[int, _Stat] = {}
    todo = [p for p in roots if p in table]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found[pid] = table[pid]
            todo.extend(children.get(pid, ()))
    return found


def kill_leftovers(
    pid: int | None,
    pgid: int | None,
    cgroups: list[str],
    started_at_epoch: float | None,
    *,
    label: str | None = None,
    slack_seconds: float = 5.0,
) -> int:
    """Kill what a previous daemon's run left running; returns how many processes.

    Cgroup members are ours by construction. The main pid counts only if it was
    created by ``started_at_epoch + slack`` (else the pid was reused); the group
    counts only if its leader is that process or gone (a pgid cannot be reused while
    any member lives). Without ``started_at_epoch`` only cgroups are trusted. With
    ``label``, processes carrying the run's marker (escaped with setsid) go too.
    """
    killed: set[int] = set()
    if started_at_epoch is not None:
        for process in _recorded(pid, pgid, started_at_epoch, slack_seconds, label).values():
            with contextlib.suppress(psutil.Error):
                process.kill()  # psutil refuses if the pid now names another process
                killed.add(process.pid)
    deadline = time.monotonic() + SWEEP_SECONDS
    for path in cgroups:
        while (hit := kill_cgroup_pass(path)) and time.monotonic() < deadline:
            killed |= hit
            time.sleep(0.002)
        remove_cgroup(path)
    return len(killed)


def _recorded(
    pid: int | None, pgid: int | None, started: float, slack: float, label: str | None
) -> dict[int, psutil.Process]:
    found: dict[int, psutil.Process] = {}
    leader = _process(pid) if pid is not None else None
    if leader is not None and _created(leader) <= started + slack:
        found[leader.pid] = leader
        with contextlib.suppress(psutil.Error):
            found.update({c.pid: c for c in leader.children(recursive=True)})
    holder = _process(pgid) if pgid is not None else None
    group_ours = pgid is not None and (holder is None or _created(holder) <= started + slack)
    prefix = f"{MARKER_VAR}={label}.".encode() if label else None
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if proc.pid in found or proc.create_time() < started - slack:
                continue
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if (group_ours and os.getpgid(proc.pid) == pgid) or (
                prefix and _environ_has(proc.pid, prefix)
            ):
                found[proc.pid] = proc
    return {p: proc for p, proc in found.items() if _alive(proc)}


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _created(process: psutil.Process) -> float:
    try:
        return process.create_time()
    except psutil.Error:
        return float("inf")


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _environ_has(pid: int, prefix: bytes) -> bool:
    with open(f"/proc/{pid}/environ", "rb") as f:
        return (b"\0" + prefix) in (b"\0" + f.read())


def kill_marked(labels: set[str], prefix: str | None = None) -> int:
    """Kill every process whose marker names one of ``labels`` (or a label starting with
    ``prefix``); one pass over /proc.

    For runs no row names (a daemon killed between a spawn and the run's first
    write): without a recorded pid or start time, the marker is all there is.
    """
    killed = 0
    if not labels and not prefix:
        return killed
    var = f"{MARKER_VAR}=".encode()
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            with open(f"/proc/{proc.pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
            marker = next((v[len(var) :] for v in env if v.startswith(var)), None)
            label = marker.decode().rsplit(".", 1)[0] if marker is not None else None
            if label is not None and (label in labels or (prefix and label.startswith(prefix))):
                proc.kill()  # psutil refuses if the pid now names another process
                killed += 1
    return killed
