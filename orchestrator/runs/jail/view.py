"""The model's private view of the file system, built in a mount namespace of its own.

A tmpfs becomes the model's root (``/jail``); system folders, the interpreter
and the extra read paths are bound into it read-only, ``/dev`` gets only a few
harmless nodes, ``/tmp`` and ``/dev/shm`` are private tmpfs (their pages count
against the run's memory), and ``/proc`` is a fresh instance with
``hidepid=invisible``: the model sees only processes it could ptrace, i.e. its
own. Everything of the daemon's home is absent except what each run binds in
(its folder read-write; its package, environment and input read-only).

The host's root stays reachable to the jail under ``/oldroot`` (after a
``pivot_root`` onto a staging tmpfs), so binds can be made per run; the model
is ``chroot``-ed into ``/jail`` and, holding no capability, cannot leave it.
"""

from __future__ import annotations

import os
import platform

from . import sysc

JAIL = "/jail"
OLD = "/oldroot"
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
Bind = tuple[str, str]
"""(path as the model sees it, real path on the host)."""


def enter_namespaces(*, user: bool, net: bool, ipc: bool) -> None:
    """New mount (and user, network, IPC) namespaces for this process alone.

    In a user namespace the map is the identity for our own uid and gid: we may
    mount, but after ``exec`` the model (not uid 0 inside) holds no capability.
    """
    uid, gid = os.getuid(), os.getgid()
    flags = sysc.CLONE_NEWNS
    flags |= sysc.CLONE_NEWUSER if user else 0
    flags |= sysc.CLONE_NEWNET if net else 0
    flags |= sysc.CLONE_NEWIPC if ipc else 0
    sysc.unshare(flags)
    if user:
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    sysc.mount(None, "/", None, sysc.MS_REC | sysc.MS_PRIVATE)  # nothing leaks back to the host


class View:
    """Builds ``/jail``; ``base`` once per standby, ``add`` per run, ``seal`` before chroot."""

    def __init__(self) -> None:
        self.covered: list[str] = []
        """Folders already visible read-only: a path beneath needs no bind of its own."""
        self.hidden: str | None = None
        """The daemon's home: masked, so paths beneath are bound one by one."""

    def base(self, plan: dict[str, object]) -> None:
        """Everything that does not depend on the run."""
        self._pivot()
        size = int(str(plan.get("tmp_size_mb") or 1024))
        sysc.mount("tmpfs", JAIL, "tmpfs", sysc.MS_NOSUID | sysc.MS_NODEV, "mode=0755,size=4m")
        for target, source in _pairs(plan.get("system")):
            self._system(target, source)
        for target, source in _pairs(plan.get("read")):
            self.add(target, source, writable=False)
        self._proc(bool(plan.get("proc_hidden")))
        self._dev(size)
        self._tmpfs("/tmp", "mode=1777", size)
        hidden = plan.get("hide")
        if isinstance(hidden, str):
            self.hidden = hidden
            if os.path.lexists(JAIL + hidden):
                self._tmpfs(hidden, "mode=0755", 1)  # the home inside a bound tree: mask it

    def add(self, target: str, source: str, *, writable: bool) -> None:
        """Bind ``source`` at ``target``; read-only unless ``writable``."""
        if not writable and self._visible(target):
            return
        inside = JAIL + target
        if writable and not os.path.lexists(OLD + source):  # an output file not made yet
            os.close(os.open(OLD + source, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
        if os.path.isdir(OLD + source):
            os.makedirs(inside, mode=0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(inside), mode=0o755, exist_ok=True)
            if not os.path.lexists(inside):
                os.close(os.open(inside, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o444))
        sysc.mount(OLD + source, inside, None, sysc.MS_BIND | sysc.MS_REC)
        if not writable:
            self._read_only(inside, OLD + source, sysc.MS_NOSUID | sysc.MS_NODEV)
            self.covered.append(target)

    def seal(self) -> None:
        """The root's own tmpfs becomes read-only; the jail then chroots into it."""
        flags = sysc.MS_REMOUNT | sysc.MS_BIND | sysc.MS_RDONLY | sysc.MS_NOSUID | sysc.MS_NODEV
        sysc.mount(None, JAIL, None, flags)

    @staticmethod
    def inside(path: str) -> str:
        """Where the jail reaches ``path`` of the model's view before the chroot."""
        return JAIL + path

    # -- pieces --------------------------------------------------------------------

    def _pivot(self) -> None:
        """The host root moves to /oldroot under a staging tmpfs (on /tmp, which the
        pivot uncovers again under /oldroot/tmp), so every host path stays a source."""
        number = _PIVOT_ROOT.get(platform.machine())
        if number is None:
            raise OSError(38, f"pivot_root is unknown on {platform.machine()}")
        sysc.mount("tmpfs", "/tmp", "tmpfs", sysc.MS_NOSUID | sysc.MS_NODEV, "mode=0700,size=1m")
        os.mkdir("/tmp" + OLD)
        os.mkdir("/tmp" + JAIL, 0o755)
        if sysc.syscall(number, b"/tmp", ("/tmp" + OLD).encode()) != 0:
            raise sysc.fail("pivot_root")
        os.chdir("/")

    def _system(self, target: str, source: str) -> None:
        """A top-level system folder: a symlink stays a symlink (merged /usr)."""
        if os.path.islink(OLD + target) and os.path.dirname(target) == "/":
            os.symlink(os.readlink(OLD + target), JAIL + target)
        elif os.path.exists(OLD + source):
            self.add(target, source, writable=False)

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

    def _dev(self, shm_mb: int) -> None:
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
        self._tmpfs("/dev/shm", "mode=1777", shm_mb)

    def _tmpfs(self, target: str, options: str, size_mb: int) -> None:
        os.makedirs(JAIL + target, mode=0o755, exist_ok=True)
        flags = sysc.MS_NOSUID | sysc.MS_NODEV
        sysc.mount("tmpfs", JAIL + target, "tmpfs", flags, f"{options},size={size_mb}m")

    def _read_only(self, inside: str, source: str, extra: int) -> None:
        kept = os.statvfs(source).f_flag
        flags = sysc.MS_REMOUNT | sysc.MS_BIND | sysc.MS_RDONLY | extra
        flags |= sum(ms for st, ms in _KEPT_FLAGS.items() if kept & st)
        sysc.mount(None, inside, None, flags)

    def _visible(self, target: str) -> bool:
        if self.hidden is not None and _beneath(target, self.hidden):
            return False
        return any(_beneath(target, folder) for folder in self.covered)


def _beneath(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _pairs(value: object) -> list[Bind]:
    return [(str(t), str(s)) for t, s in value] if isinstance(value, list) else []


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
