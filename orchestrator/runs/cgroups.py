"""Per-run cgroups: the only containment that covers a whole process tree atomically.

A process cannot leave its cgroup (it can leave its process group with ``setsid``),
so memory and task limits set here bind every descendant, and ``cgroup.procs``
lists every survivor to kill. What the host allows varies (v2 with delegated
controllers, v1 memory + pids as root, or nothing), so ``detect`` tries the real
thing once, with a probe process, and caches the answer; callers fall back to
sampling when it returns ``None``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from orchestrator.models import Limits
from orchestrator.runs.jail.view import beneath

log = logging.getLogger(__name__)

MIB = 1024 * 1024
PREFIX = "orch-"
JOIN_ARG0 = "orch-join"


@dataclass(frozen=True)
class CgroupSupport:
    """Where per-run groups can be created on this host.

    ``memory_parent`` is our own memory cgroup (v1) or our own group (v2);
    ``pids_parent`` is our own v1 pids cgroup, ``None`` on v2 (same group as
    memory) or when the pids controller is not usable (tasks are then counted).
    """

    kind: str  # "cgroup-v2" | "cgroup-v1"
    memory_parent: Path
    pids_parent: Path | None

    @property
    def v2(self) -> bool:
        return self.kind == "cgroup-v2"


@dataclass
class RunCgroup:
    """The cgroup directories of one run (one on v2, memory + pids on v1)."""

    support: CgroupSupport
    memory_dir: str
    pids_dir: str | None
    applied: Limits = field(default_factory=Limits)
    """What the group's files hold now (a fresh group has no limit)."""

    @property
    def dirs(self) -> list[str]:
        return [d for d in (self.memory_dir, self.pids_dir) if d is not None]

    @classmethod
    def create(cls, support: CgroupSupport, label: str, limits: Limits) -> RunCgroup:
        """Make the run's directories and write its limits; raises ``OSError``
        (after undoing what it made) so the caller can fall back to sampling."""
        name = _name(label)
        made: list[str] = []
        try:
            memory_dir = _mkdir_unique(support.memory_parent, name, made)
            pids_dir = (
                _mkdir_unique(support.pids_parent, name, made) if support.pids_parent else None
            )
            group = cls(support, memory_dir, pids_dir)
            group.apply_limits(limits)
        except OSError:
            for path in reversed(made):
                remove_cgroup(path)
            raise
        return group

    def apply_limits(self, limits: Limits) -> None:
        """Write the memory and task limits that differ from what the group holds.

        A standby's group is prepared with the limits of the previous run, so a
        run with the same limits writes nothing on its way to the spawn.
        """
        if limits.memory_mb != self.applied.memory_mb:
            self._write_memory(limits.memory_mb)
        if limits.processes != self.applied.processes and (self.support.v2 or self.pids_dir):
            value = "max" if limits.processes is None else str(limits.processes)
            _write(f"{self.pids_dir or self.memory_dir}/pids.max", value)
        self.applied = replace(self.applied, memory_mb=limits.memory_mb, processes=limits.processes)

    def _write_memory(self, memory_mb: int | None) -> None:
        """Memory includes swap (memsw / swap.max) so a hog cannot page out and go on."""
        mem = self.memory_dir
        if self.support.v2:
            _write(f"{mem}/memory.max", "max" if memory_mb is None else str(memory_mb * MIB))
            if memory_mb is not None:
                _write_if_exists(f"{mem}/memory.swap.max", "0")
            return
        value = "-1" if memory_mb is None else str(memory_mb * MIB)
        old = self.applied.memory_mb
        # v1 refuses memsw below the memory limit: raise memsw first, lower it last
        if memory_mb is None or (old is not None and memory_mb > old):
            _write_if_exists(f"{mem}/memory.memsw.limit_in_bytes", value)
            _write(f"{mem}/memory.limit_in_bytes", value)
        else:
            _write(f"{mem}/memory.limit_in_bytes", value)
            _write_if_exists(f"{mem}/memory.memsw.limit_in_bytes", value)

    def join_prefix(self) -> list[str]:
        """``sh -c`` that moves itself into the group(s) and then execs ``"$@"``.

        Joining before exec is what makes the whole tree contained: the model's
        first instruction already runs inside the group, so nothing it forks escapes.
        """
        return ["/bin/sh", "-c", " && ".join([*self.join_steps(), 'exec "$@"']), JOIN_ARG0]

    def join_steps(self) -> list[str]:
        """Shell commands that move the shell running them into every directory."""
        return [f"echo $$ > {shlex.quote(f'{d}/cgroup.procs')}" for d in self.dirs]

    def oom_kills(self) -> int | None:
        """Kernel OOM kills inside the group; ``None`` when the kernel does not say."""
        name = "memory.events" if self.support.v2 else "memory.oom_control"
        return _keyed(f"{self.memory_dir}/{name}").get("oom_kill")

    def failcnt(self) -> int:
        """v1 only: times the limit was hit (includes reclaimed page cache, so weak)."""
        return _read_int(f"{self.memory_dir}/memory.failcnt") or 0

    def peak_bytes(self) -> int | None:
        name = "memory.peak" if self.support.v2 else "memory.max_usage_in_bytes"
        return _read_int(f"{self.memory_dir}/{name}")

    def pids_refused(self) -> int:
        """Forks the pids controller refused: the run tried to exceed ``processes``."""
        pids = self._pids_group()
        return _keyed(f"{pids}/pids.events").get("max", 0) if pids else 0

    def charged_tasks(self) -> int | None:
        """Tasks the pids controller counts here, an exited one until it is reaped;
        ``None`` without the controller. One counter read, where listing
        ``cgroup.procs`` right after an exit costs ~130 us on v1."""
        pids = self._pids_group()
        return _read_int(f"{pids}/pids.current") if pids else None

    def _pids_group(self) -> str | None:
        return self.pids_dir or (self.memory_dir if self.support.v2 else None)

    def cpu_seconds(self) -> float | None:
        """v2: the CPU every process of the group used, exited ones included; None on
        v1 (no ``cpuacct`` group here: ``procs`` and their ``/proc`` counters instead)."""
        if not self.support.v2:
            return None
        usage = _keyed(f"{self.memory_dir}/cpu.stat").get("usage_usec")
        return None if usage is None else usage / 1e6

    def procs(self) -> list[int]:
        """The processes in the group now."""
        return [int(line) for line in _read_lines(f"{self.memory_dir}/cgroup.procs") if line]

    def task_count(self) -> int:
        """Tasks (threads) in the group, for sampling ``processes`` without pids.max."""
        return len(_read_lines(f"{self.memory_dir}/tasks"))

    def kill_pass(self, sig: int = signal.SIGKILL) -> set[int]:
        """On v1 the memory group lists the whole tree: the pids group was joined in
        the same step before exec, and children inherit both."""
        return kill_cgroup_pass(self.memory_dir, sig, v2=self.support.v2)

    def remove(self) -> None:
        for path in self.dirs:
            remove_cgroup(path)


def kill_cgroup_pass(
    path: Path | str, sig: int = signal.SIGKILL, *, v2: bool | None = None
) -> set[int]:
    """Signal every process listed in the group once; returns the pids signalled.

    Callers loop until this returns nothing: a process forked between reading
    ``cgroup.procs`` and the kill shows up in the next pass (pids.max bounds it).
    ``cgroup.kill`` (v2, Linux 5.14+) is tried unless ``v2`` says it cannot exist.
    """
    path = os.fspath(path)
    if sig == signal.SIGKILL and v2 is not False:
        _write_if_exists(f"{path}/cgroup.kill", "1")
    hit = set()
    for line in _read_lines(f"{path}/cgroup.procs"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(line), sig)
            hit.add(int(line))
    return hit


def remove_cgroup(path: Path | str) -> bool:
    """Remove an emptied group; False (logged) if it is gone already or still busy."""
    try:
        os.rmdir(path)
        return True
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("could not remove cgroup %s: %s", path, exc)
        return False


@functools.cache
def detect() -> CgroupSupport | None:
    """The containment this host really provides, tried once per daemon."""
    for candidate in (_v2_candidate(), _v1_candidate()):
        support = _working(candidate) if candidate is not None else None
        if support is not None:
            log.info("run containment: %s under %s", support.kind, support.memory_parent)
            return support
    log.info("run containment: no usable cgroup, sampling with psutil")
    return None


def _v2_candidate() -> CgroupSupport | None:
    mount, own = _mounts().get("cgroup2"), _own_paths().get("")
    if mount is None or own is None:
        return None
    group = _under(mount, own)
    available = set(_read_text(group / "cgroup.controllers").split())
    if not {"memory", "pids"} <= available:
        return None
    enabled = set(_read_text(group / "cgroup.subtree_control").split())
    if not {"memory", "pids"} <= enabled:
        try:  # fails (EBUSY) unless our group holds no processes or is the root
            _write(group / "cgroup.subtree_control", "+memory +pids")
        except OSError:
            return None
    return CgroupSupport("cgroup-v2", group, None)


def _v1_candidate() -> CgroupSupport | None:
    mounts, own = _mounts(), _own_paths()
    memory = mounts.get("memory")
    if memory is None or "memory" not in own:
        return None
    pids = mounts.get("pids")
    pids_parent = _under(pids, own["pids"]) if pids and "pids" in own else None
    return CgroupSupport("cgroup-v1", _under(memory, own["memory"]), pids_parent)


def _working(candidate: CgroupSupport) -> CgroupSupport | None:
    """Create a group with limits and move a real process in: the only honest test.

    On v1 a broken pids hierarchy should not cost us the memory one, so a
    failure is retried without pids (``processes`` is then counted by sampling).
    """
    attempts = [candidate]
    if candidate.pids_parent is not None:
        attempts.append(CgroupSupport(candidate.kind, candidate.memory_parent, None))
    for support in attempts:
        try:
            group = RunCgroup.create(
                support, f"probe-{os.getpid()}", Limits(memory_mb=64, processes=64)
            )
        except OSError as exc:
            log.debug("cgroup probe %s failed: %s", support, exc)
            continue
        try:
            argv = [*group.join_prefix(), "/bin/true"]
            ok = subprocess.run(argv, stderr=subprocess.DEVNULL, timeout=10).returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
        group.remove()
        if ok:
            return support
    return None


def _mounts() -> dict[str, tuple[Path, str]]:
    """Controller (or "cgroup2") -> (mount point, root of the mount) from mountinfo."""
    found: dict[str, tuple[Path, str]] = {}
    for line in _read_lines(Path("/proc/self/mountinfo")):
        left, _, right = line.partition(" - ")
        fields, after = left.split(), right.split()
        if len(fields) < 5 or len(after) < 3:
            continue
        point = Path(_unescape(fields[4]))
        if after[0] == "cgroup2":
            found.setdefault("cgroup2", (point, fields[3]))
        elif after[0] == "cgroup":
            for option in after[2].split(","):
                found.setdefault(option, (point, fields[3]))
    return found


def hierarchy_mounts(support: CgroupSupport | None) -> list[tuple[str, str, str]]:
    """The host's mounts that hold the runs' groups: (mount point, type, mount data).

    What a jail mounts afresh inside its run's cgroup namespace, so that the model sees
    its own limits where runtimes look for them (``jail.view``), and only these: in any
    other hierarchy its group is the daemon's, whose processes a mount there would list.
    For v1 the data names the hierarchy (its controllers, its ``name=``); v2 needs none.
    """
    if support is None:
        return []
    parents = [p for p in (support.memory_parent, support.pids_parent) if p is not None]
    mounts: list[tuple[str, str, str]] = []
    for line in _read_lines(Path("/proc/self/mountinfo")):
        left, _, right = line.partition(" - ")
        fields, after = left.split(), right.split()
        if len(fields) >= 5 and len(after) >= 3 and after[0] in ("cgroup", "cgroup2"):
            data = "" if after[0] == "cgroup2" else _hierarchy(after[2].split(","))
            mounts.append((_unescape(fields[4]), after[0], data))
    found: list[tuple[str, str, str]] = []
    for parent in parents:
        holding = [m for m in mounts if beneath(str(parent), m[0])]
        best = max(holding, key=lambda m: len(m[0]), default=None)  # the innermost mount
        if best is not None and best not in found:
            found.append(best)
    return found


def _hierarchy(options: list[str]) -> str:
    """The options that name a v1 hierarchy: its controllers and ``name=``; the others
    (``rw``, ``xattr``, ``release_agent=``...) belong to the host's superblock."""
    controllers = {line.split()[0] for line in _read_lines("/proc/cgroups")[1:] if line.strip()}
    return ",".join(o for o in options if o in controllers or o.startswith("name="))


def _own_paths() -> dict[str, str]:
    """Controller -> our cgroup path ("" is the v2 entry) from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    for line in _read_lines(Path("/proc/self/cgroup")):
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def _under(mount: tuple[Path, str], own: str) -> Path:
    point, root = mount
    relative = os.path.relpath(own, root) if own.startswith(root) else own
    return point if relative in (".", "/") else point / relative.lstrip("/")


def _mkdir_unique(parent: Path, name: str, made: list[str]) -> str:
    """A fresh directory: a leftover of the same name belongs to someone else."""
    for attempt in range(100):
        path = f"{parent}/{name}" if attempt == 0 else f"{parent}/{name}-{attempt}"
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        made.append(path)
        return path
    raise FileExistsError(f"no free cgroup name under {parent} for {name}")


def remove_stale_standbys(support: CgroupSupport) -> None:
    """Empty and drop the standby groups of dead daemons.

    Everything in one is ours: an idle shell, or a model handed over by a daemon
    that died before the run's first write named it (see ``RunService``).
    """
    for parent in (support.memory_parent, support.pids_parent):
        for path in parent.glob(f"{PREFIX}standby-*") if parent else ():
            owner = path.name.split("-")[2]
            if owner.isdigit() and not _pid_alive(int(owner)):
                while kill_cgroup_pass(path):
                    time.sleep(0.002)
                remove_cgroup(path)


def run_groups(label: str) -> list[Path]:
    """The groups a run spawned without a standby got (``RunCgroup.create(label)``)."""
    support = detect()
    if support is None:
        return []
    parents = (support.memory_parent, support.pids_parent)
    return [p / _name(label) for p in parents if p is not None and (p / _name(label)).is_dir()]


def groups_named(prefix: str) -> list[Path]:
    """The groups of every label starting with ``prefix`` (``RunCgroup.create``)."""
    support = detect()
    if support is None:
        return []
    parents = (support.memory_parent, support.pids_parent)
    return [g for p in parents if p is not None for g in p.glob(f"{_name(prefix)}*") if g.is_dir()]


def _pid_alive(pid: int) -> bool:
    """A zombie is dead: a daemon killed with SIGKILL stays one until its parent (here
    pid 1, which may take its time) collects it, and its groups must go meanwhile."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc to ask: alive, as kill said
    return state not in (b"Z", b"X")


def _name(label: str) -> str:
    return PREFIX + re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:80]


def _unescape(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def _write(path: Path | str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _write_if_exists(path: Path | str, value: str) -> None:
    with contextlib.suppress(FileNotFoundError, PermissionError):
        _write(path, value)


def _read_text(path: Path | str) -> str:
    """Straight ``os.read``: a third of ``Path.read_text``'s cost, and a run's exit reads
    four of these files on its way to the answer."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return ""
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return ""
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def _read_lines(path: Path | str) -> list[str]:
    return _read_text(path).splitlines()


def _read_int(path: Path | str) -> int | None:
    text = _read_text(path).strip()
    return int(text) if text.isdigit() else None


def _keyed(path: Path | str) -> dict[str, int]:
    """Parse ``key value`` lines (memory.events, oom_control, pids.events)."""
    out = {}
    for line in _read_lines(path):
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out
