"""The few Linux calls Python's ``os`` lacks, through ctypes: mount, unshare, prctl, clone.

Every wrapper raises ``OSError`` with the call named, so a jail that cannot set
something up says exactly what, and the run fails instead of running unprotected.
"""

from __future__ import annotations

import ctypes
import os
import platform
import signal

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CLONE_PARENT = 0x00008000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_RELATIME = 1 << 21
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38

_SYS_CLONE3 = 435  # the same number on every architecture
_SYS_MOUNT_SETATTR = 442  # likewise (Linux 5.12)
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
_SYS_CLONE = {"x86_64": 56, "aarch64": 220, "riscv64": 220, "ppc64le": 120, "s390x": 120}
"""clone(2) for hosts whose seccomp policy answers clone3 with ENOSYS (Docker's does)."""

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [
    ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p,
]  # fmt: skip
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]


def fail(what: str) -> OSError:
    """The OSError of the last libc call, naming what was attempted."""
    number = ctypes.get_errno()
    return OSError(number, f"{what}: {os.strerror(number)}")


def syscall(number: int, *args: object) -> int:
    """A raw system call; integers pass as C longs, bytes as ``char *``, structures by reference."""
    converted = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    return int(_libc.syscall(ctypes.c_long(number), *converted))


class _MountAttr(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("set", "clear", "propagation", "userns")]


def read_only_tree(target: str) -> None:
    """``target`` and every mount beneath it read-only, in one call: a remount reaches
    only the top of a recursive bind, which left ``/sys``'s own mounts (tracing, bpf...)
    writable in the view."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    size = ctypes.sizeof(attr)
    flags = AT_RECURSIVE
    if syscall(_SYS_MOUNT_SETATTR, AT_FDCWD, target.encode(), flags, ctypes.byref(attr), size):
        raise fail(f"mount_setattr {target}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    encoded = [s.encode() if s is not None else None for s in (source, target, fstype)]
    if _libc.mount(*encoded, flags, data.encode() or None) != 0:
        raise fail(f"mount {fstype or source or ''} on {target}")


def umount(target: str) -> None:
    if _libc.umount2(target.encode(), MNT_DETACH) != 0:
        raise fail(f"umount {target}")


def unshare(flags: int) -> None:
    if _libc.unshare(flags) != 0:
        raise fail("unshare")


def setns(fd: int, kind: int) -> None:
    """Join the namespace ``fd`` names (``kind``: a ``CLONE_NEW*`` flag)."""
    if _libc.setns(fd, kind) != 0:
        raise fail("setns")


def prctl(option: int, arg2: int, arg3: int = 0) -> int:
    """``prctl(option, arg2, arg3, 0, 0)``: 0, or -1 with ``errno`` set."""
    return int(_libc.prctl(option, arg2, arg3, 0, 0))


def no_new_privs() -> None:
    """After this, exec can never grant privileges (setuid bits, file capabilities)."""
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise fail("prctl(PR_SET_NO_NEW_PRIVS)")


def not_dumpable() -> None:
    """Only root may then ptrace us or read our /proc files (environ, mem, fd)."""
    if _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise fail("prctl(PR_SET_DUMPABLE)")


class _CloneArgs(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("pidfd", ctypes.c_uint64),
        ("child_tid", ctypes.c_uint64),
        ("parent_tid", ctypes.c_uint64),
        ("exit_signal", ctypes.c_uint64),
        ("stack", ctypes.c_uint64),
        ("stack_size", ctypes.c_uint64),
        ("tls", ctypes.c_uint64),
    ]


_CLONE3_PARENT = (  # clone3 refuses an exit signal with CLONE_PARENT
    ctypes.c_long(_SYS_CLONE3),
    ctypes.byref(_CloneArgs(flags=CLONE_PARENT)),
    ctypes.c_long(ctypes.sizeof(_CloneArgs)),
)
"""``fork_sibling``'s arguments, made once: the zygote writes as little memory as it can
between two clones (each one write-protects all of it)."""


def fork_sibling() -> int:
    """fork(), except that the child's parent is our parent (``CLONE_PARENT``).

    Returns 0 in the child and its pid in the caller. Only safe in a
    single-threaded process, which the zygote is: like ``fork`` without
    ``atfork`` handlers. The child inherits our exit signal (SIGCHLD), so our
    parent waits for it like for any child of its own.
    """
    pid = _libc.syscall(*_CLONE3_PARENT)
    if pid < 0 and ctypes.get_errno() == 38:  # ENOSYS
        number = _SYS_CLONE.get(platform.machine())
        if number is None:
            raise OSError(38, f"clone3 is unavailable and clone is unknown on {platform.machine()}")
        pid = syscall(number, CLONE_PARENT | signal.SIGCHLD, 0, 0, 0, 0)
    if pid < 0:
        raise fail("clone(CLONE_PARENT)")
    return pid


CLONE_VM = 0x00000100


class MemoryKeeper:
    """A process that holds the caller's memory a moment, so that its ``exec`` is quick.

    ``exec`` frees the old address space before the new program runs: for a standby, a
    copy of the zygote (~2,400 pages mapped), ~0.9 ms of unmapping on the model's path
    (perf, 2026-12-07). ``hold`` clones a process that shares that memory (``CLONE_VM``)
    and only sleeps; ``exec`` then drops one user of it instead of the last, and the
    keeper frees it when its sleep ends, while the model runs. ``CLONE_PARENT`` makes it
    the daemon's child (reaped there, never the model's); it runs no Python, only
    libc's ``usleep`` on a stack of its own, so sharing the interpreter's memory is safe
    (the clone's caller execs or exits right after).

    Everything ``hold`` needs is made here, ahead (a standby makes it while preparing).
    """

    STACK = 16 * 1024
    """Room for ``usleep`` and a signal's frame (a handler copied from the interpreter may
    run there); zero-filled by ctypes, so each page of it is one more fault per standby."""

    def __init__(self) -> None:
        self._stack = ctypes.create_string_buffer(self.STACK)
        self._top = ctypes.c_void_p((ctypes.addressof(self._stack) + self.STACK) & ~15)
        self._sleep = ctypes.cast(_libc.usleep, ctypes.c_void_p)
        self._clone = _libc.clone
        self._clone.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        self._clone.restype = ctypes.c_int

    def hold(self, microseconds: int) -> int | None:
        """The keeper's pid, or None when it could not be made (a full pids limit): then
        ``exec`` frees the memory itself, as without a keeper."""
        pid = self._clone(self._sleep, self._top, CLONE_VM | CLONE_PARENT, microseconds)
        return pid if pid > 0 else None
