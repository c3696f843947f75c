"""The model's private view of the file system, built in a mount namespace of its own.

A tmpfs becomes the model's root; system folders, the interpreter and the extra
read paths are bound into it read-only, ``/dev`` gets only a few harmless nodes,
``/tmp`` and ``/dev/shm`` are private tmpfs (their pages count against the run's
memory), and ``/proc`` is a fresh instance with ``hidepid=invisible``: the model
sees only processes it could ptrace, i.e. its own. Nothing of the daemon's home
is there until a run binds in its own paths (its folder read-write; its package,
environment and input read-only).

``/sys/fs/cgroup`` is an empty read-only tmpfs instead of the host's (whose
``cgroup.procs`` list every process, the daemon's too, and whose groups show
every other run's usage). A standby that joined its run's groups enters a cgroup
namespace of its own and mounts each hierarchy holding them afresh there
(``cgroups``): the model sees its own group as the root, with its limits, where
runtimes look for them (``/proc/self/cgroup`` says ``/``, ``mountinfo`` the mount).

Building ends with ``pivot_root`` into that root and detaching the old one,
keeping the host's tree only under ``/.src`` so that runs can bind from it. A
run's last step before ``exec`` detaches ``/.src`` too: the model's namespace
then holds no way back to the host, even for a process that gains capabilities
in a user namespace of its own.

The zygote builds this view once, in a *template* namespace; a standby joins it
and takes a private copy (``copy``: one ``unshare``, ~0.25 ms, instead of ~1.2 ms
of CPU to build), with its own tmpfs on ``/tmp``, ``/dev/shm`` and the home, so
that nothing a run writes or mounts reaches another.
"""

from __future__ import annotations

import contextlib
import errno
import os
import platform

from . import sysc

STAGE, JAIL, OLD, SRC = "/tmp", "/jail", "/oldroot", "/.src"
CGROUP = "/sys/fs/cgroup"
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_KEPT_FLAGS = {  # statvfs flag -> mount flag: a remount must keep what a user namespace locked
    os.ST_NOSUID: sysc.MS_NOSUID,
    os.ST_NODEV: sysc.MS_NODEV,
    os.ST_NOEXEC: sysc.MS_NOEXEC,
    os.ST_NOATIME: sysc.MS_NOATIME,
    os.ST_NODIRATIME: sysc.MS_NODIRATIME,
    os.ST_RELATIME: sysc.MS_RELATIME,
}


def enter_namespaces(*, user: bool, net: bool, ipc: bool, cgroup: bool = False) -> None:
    """New mount (and user, network, IPC, cgroup) namespaces for this process alone.

    In a user namespace the map is the identity for our own uid and gid: we may
    mount, but after ``exec`` the model (not uid 0 inside) holds no capability.
    """
    uid, gid = os.getuid(), os.getgid()
    flags = sysc.CLONE_NEWNS
    flags |= sysc.CLONE_NEWUSER if user else 0
    flags |= sysc.CLONE_NEWNET if net else 0
    flags |= sysc.CLONE_NEWIPC if ipc else 0
    flags |= sysc.CLONE_NEWCGROUP if cgroup else 0
    sysc.unshare(flags)
    if user:
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    sysc.mount(None, "/", None, sysc.MS_REC | sysc.MS_PRIVATE)  # nothing leaks back to the host


class View:
    """Builds the model's root: ``base`` once per standby, ``add`` and ``seal`` per run.

    Until ``base`` ends, targets are reached under ``/jail`` and sources under
    ``/oldroot``; afterwards the view is ``/`` and sources are under ``/.src``.
    """

    def __init__(self, plan: dict[str, object]) -> None:
        self.into, self.source = JAIL, OLD
        self.size = int(str(plan.get("tmp_size_mb") or 1024))
        self.read = _pairs(plan.get("read"))
        self.shared = [t for t, _ in _pairs(plan.get("system")) + self.read]
        """What ``base`` binds read-only (and so what a copy of it shows)."""
        self.covered: list[str] = []
        """Folders visible read-only: a path beneath needs no bind of its own."""
        hidden = plan.get("hide")
        self.hidden = hidden if isinstance(hidden, str) else None
        """The daemon's home: masked, so paths beneath are bound one by one."""
        self.cgroup_fs = _triples(plan.get("cgroup_fs"))
        """(mount point, type, data) of each hierarchy a run's groups may lie in."""

    def base(self, plan: dict[str, object]) -> None:
        """Everything that does not depend on the run."""
        self._stage()
        sysc.mount("tmpfs", JAIL, "tmpfs", sysc.MS_NOSUID | sysc.MS_NODEV, "mode=0755,size=4m")
        for target, source in _pairs(plan.get("system")):
            self._system(target, source)
        self._read_only_below([t for t, _ in _pairs(plan.get("system"))])
        self._cgroup_mask()
        for target, source in _pairs(plan.get("read")):
            self.add(target, source, writable=False)
        self._proc(bool(plan.get("proc_hidden")))
        self._dev()
        self._private(JAIL)
        self._enter()

    def copy(self, template: int, users: int | None, flags: int) -> None:
        """Join the ``template`` namespace (in its user namespace ``users``), take a copy
        of it (with ``flags``: more namespaces to make), and private tmpfs on top."""
        if users is not None:
            sysc.setns(users, sysc.CLONE_NEWUSER)
        sysc.setns(template, sysc.CLONE_NEWNS)
        sysc.unshare(sysc.CLONE_NEWNS | flags)
        self.into, self.source = "", SRC
        self._private("")
        self.covered = list(self.shared)

    def _private(self, root: str) -> None:
        """What each standby needs of its own: /tmp, /dev/shm, and the home (where
        the run's mount points go), so that nothing of one run is seen by the next."""
        self._tmpfs(root, "/tmp", "mode=1777", self.size)
        self._tmpfs(root, "/dev/shm", "mode=1777", self.size)
        if self.hidden is not None:
            os.makedirs(root + self.hidden, mode=0o755, exist_ok=True)
            self._tmpfs(root, self.hidden, "mode=0755", 1)  # also masks a home in a bound tree
            for folder in ("runs", "executables", "envs"):  # where runs bind from
                os.mkdir(f"{root}{self.hidden}/{folder}", 0o755)
        for target, source in self.read:  # e.g. orch installed under /tmp: bound again on top
            if beneath(target, "/tmp") or beneath(target, "/dev/shm"):
                self._bind(target, source, writable=False)

    def add(self, target: str, source: str, *, writable: bool) -> None:
        """Bind the host's ``source`` at ``target``; read-only unless ``writable``."""
        if not writable and self._visible(target):
            return
        self._bind(target, source, writable=writable)

    def _bind(self, target: str, source: str, *, writable: bool) -> None:
        inside, origin = self.into + target, self.source + source
        if not os.path.lexists(origin):
            if not writable:  # gone since the command was made (an input): no empty stand-in
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), source)
            os.close(os.open(origin, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))  # an output
        if os.path.isdir(origin):
            os.makedirs(inside, mode=0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(inside), mode=0o755, exist_ok=True)
            if not os.path.lexists(inside):
                os.close(os.open(inside, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o444))
        sysc.mount(origin, inside, None, sysc.MS_BIND | sysc.MS_REC)
        if not writable:
            self._read_only(inside, origin, sysc.MS_NOSUID | sysc.MS_NODEV)
            self.covered.append(target)

    def cgroups(self, joined: list[str]) -> None:
        """Mount afresh, read-only, each hierarchy that holds one of the ``joined``
        groups. Made in the run's cgroup namespace (entered after joining), a mount
        shows that group as its root: nothing above it or beside it. Where the run has
        no group, the hierarchy stays an empty folder (its group would be the daemon's)."""
        flags = sysc.MS_RDONLY | sysc.MS_NOSUID | sysc.MS_NODEV | sysc.MS_NOEXEC
        for point, fstype, data in self.cgroup_fs:
            if any(beneath(path, point) for path in joined):
                sysc.mount(fstype, self.into + point, fstype, flags, data)

    def seal(self) -> None:
        """The host's tree goes for good, and the root's own tmpfs turns read-only.

        The empty ``/.src`` stays: removing it would remove it from the template too
        (the copy shares the tmpfs), and with it the template's own ``/.src`` mount.
        """
        sysc.umount(SRC)
        flags = sysc.MS_REMOUNT | sysc.MS_BIND | sysc.MS_RDONLY | sysc.MS_NOSUID | sysc.MS_NODEV
        sysc.mount(None, "/", None, flags)

    # -- pieces --------------------------------------------------------------------

    def _stage(self) -> None:
        """The host root moves to /oldroot under a staging tmpfs (on /tmp, which the
        pivot uncovers again under /oldroot/tmp), so every host path stays a source."""
        sysc.mount("tmpfs", STAGE, "tmpfs", sysc.MS_NOSUID | sysc.MS_NODEV, "mode=0700,size=1m")
        os.mkdir(STAGE + OLD)
        os.mkdir(STAGE + JAIL, 0o755)
        _pivot_root(STAGE, STAGE + OLD)

    def _enter(self) -> None:
        """Make the view the root; the host's tree stays only under /.src, for the run."""
        os.mkdir(JAIL + SRC, 0o700)
        sysc.mount(OLD, JAIL + SRC, None, sysc.MS_BIND | sysc.MS_REC)
        os.mkdir(JAIL + "/.old", 0o700)
        _pivot_root(JAIL, JAIL + "/.old")
        sysc.umount("/.old")  # the staging tmpfs and the old root's own mount
        os.rmdir("/.old")
        self.into, self.source = "", SRC

    def _system(self, target: str, source: str) -> None:
        """A top-level system folder: a symlink stays a symlink (merged /usr)."""
        if os.path.islink(OLD + target) and os.path.dirname(target) == "/":
            os.symlink(os.readlink(OLD + target), JAIL + target)
        elif os.path.exists(OLD + source):
            self.add(target, source, writable=False)

    def _read_only_below(self, targets: list[str]) -> None:
        """The mounts beneath the system folders read-only too (``/sys/kernel/tracing``,
        ``/sys/fs/bpf``...). A kernel before 5.12 lacks the call: their writes then meet
        the run's uid and Landlock's read-only rules alone, as they did before it."""
        for target in targets:
            if os.path.ismount(JAIL + target):
                try:
                    sysc.read_only_tree(JAIL + target)
                except OSError as exc:
                    if exc.errno != errno.ENOSYS:
                        raise

    def _cgroup_mask(self) -> None:
        """The host's cgroup tree leaves the view: detached where we may (root), covered
        where a user namespace locked it; an empty read-only tmpfs in its place, with a
        folder for each hierarchy a standby may mount there (``cgroups``)."""
        mask = JAIL + CGROUP
        if not os.path.isdir(mask):
            return  # no /sys in the view, or no cgroups on the host
        with contextlib.suppress(OSError):  # not a mount point, or locked by a user namespace
            sysc.umount(mask)
        options = "mode=0755,size=16k"
        flags = sysc.MS_NOSUID | sysc.MS_NODEV | sysc.MS_NOEXEC
        sysc.mount("tmpfs", mask, "tmpfs", flags, options)
        for point, _, _ in self.cgroup_fs:
            if point != CGROUP and beneath(point, CGROUP):
                os.makedirs(JAIL + point, mode=0o755, exist_ok=True)
        sysc.mount(None, mask, None, flags | sysc.MS_REMOUNT | sysc.MS_RDONLY, options)

    def _proc(self, hidden: bool) -> None:
        os.makedirs(JAIL + "/proc", exist_ok=True)
        if not hidden:  # a user namespace may not mount procfs: the host's, as it is
            sysc.mount(OLD + "/proc", JAIL + "/proc", None, sysc.MS_BIND | sysc.MS_REC)
            return
        flags = sysc.MS_NOSUID | sysc.MS_NODEV | sysc.MS_NOEXEC
        try:
            sysc.mount("proc", JAIL + "/proc", "proc", flags, "hidepid=invisible")
        except OSError:  # before Linux 5.8: the numeric form
            sysc.mount("proc", JAIL + "/proc", "proc", flags, "hidepid=2")

    def _dev(self) -> None:
        dev = JAIL + "/dev"
        os.mkdir(dev, 0o755)
        sysc.mount("tmpfs", dev, "tmpfs", sysc.MS_NOSUID | sysc.MS_NOEXEC, "mode=0755,size=64k")
        for name in _DEVICES:
            if os.path.exists(OLD + "/dev/" + name):
                os.close(os.open(f"{dev}/{name}", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o666))
                sysc.mount(f"{OLD}/dev/{name}", f"{dev}/{name}", None, sysc.MS_BIND)
        os.symlink("/proc/self/fd", dev + "/fd")
        for number, name in enumerate(("stdin", "stdout", "stderr")):
            os.symlink(f"/proc/self/fd/{number}", f"{dev}/{name}")
        os.mkdir(dev + "/shm", 0o755)
        flags = sysc.MS_REMOUNT | sysc.MS_RDONLY | sysc.MS_NOSUID | sysc.MS_NOEXEC
        sysc.mount(None, dev, None, flags, "mode=0755,size=64k")  # shared by every copy

    def _tmpfs(self, root: str, target: str, options: str, size_mb: int) -> None:
        os.makedirs(root + target, mode=0o755, exist_ok=True)
        flags = sysc.MS_NOSUID | sysc.MS_NODEV
        sysc.mount("tmpfs", root + target, "tmpfs", flags, f"{options},size={size_mb}m")

    def _read_only(self, inside: str, source: str, extra: int) -> None:
        kept = os.statvfs(source).f_flag
        flags = sysc.MS_REMOUNT | sysc.MS_BIND | sysc.MS_RDONLY | extra
        flags |= sum(ms for st, ms in _KEPT_FLAGS.items() if kept & st)
        sysc.mount(None, inside, None, flags)

    def _visible(self, target: str) -> bool:
        if self.hidden is not None and beneath(target, self.hidden):
            return False
        return any(beneath(target, folder) for folder in self.covered)


def _pivot_root(new: str, old: str) -> None:
    number = _PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(38, f"pivot_root is unknown on {platform.machine()}")
    if sysc.syscall(number, new.encode(), old.encode()) != 0:
        raise sysc.fail("pivot_root")
    os.chdir("/")


def beneath(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or lies inside it (as text: neither is resolved)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _pairs(value: object) -> list[tuple[str, str]]:
    return [(str(t), str(s)) for t, s in value] if isinstance(value, list) else []


def _triples(value: object) -> list[tuple[str, str, str]]:
    return [(str(a), str(b), str(c)) for a, b, c in value] if isinstance(value, list) else []


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
