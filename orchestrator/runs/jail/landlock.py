"""Landlock: the kernel's unprivileged allowlist for files, TCP ports, signals and sockets.

A ruleset *handles* a set of access rights (everything this kernel's ABI knows);
whatever it handles is denied unless a rule grants it beneath some path. Once a
process restricts itself, it and everything it starts keep the restriction
forever. Rules name inodes (opened here with ``O_PATH``), so a bind mount of an
allowed folder is allowed too, and nothing outside the named trees is.

ABI levels and what they add: 1 files; 2 ``REFER`` (cross-folder links and
renames); 3 ``TRUNCATE``; 4 TCP bind/connect; 5 device ioctls; 6 scoping of
signals and abstract unix sockets to the sandbox; 7 audit logging (nothing to
handle). Mounts, ``pivot_root`` and ptrace of anything outside the sandbox are
denied at every level.
"""

from __future__ import annotations

import ctypes
import os
import stat

from . import sysc

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2
_CREATE_RULESET_VERSION = 1

EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13
TRUNCATE = 1 << 14
IOCTL_DEV = 1 << 15

NET_BIND_TCP = 1 << 0
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
SCOPE_SIGNAL = 1 << 1

FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
"""The rights a rule on a file (not a folder) may carry."""
READ = EXECUTE | READ_FILE | READ_DIR
"""Read and run what is beneath: system folders, the package, the Python environment."""
WRITE = (1 << 16) - 1 & ~(MAKE_CHAR | MAKE_BLOCK)
"""Everything beneath but device nodes: the run's own folders."""
DEVICE = READ_FILE | WRITE_FILE | TRUNCATE | IOCTL_DEV
"""Character devices such as /dev/null (a shell's ``> /dev/null`` truncates)."""


def abi() -> int:
    """The Landlock ABI this kernel offers; 0 when Landlock is missing or disabled."""
    version = sysc.syscall(_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION)
    return max(version, 0)


def fs_rights(version: int) -> int:
    """File-system rights the kernel of ``version`` knows (and so can deny)."""
    if version <= 0:
        return 0
    top = {1: REFER, 2: TRUNCATE, 3: IOCTL_DEV, 4: IOCTL_DEV}.get(version, 1 << 16)
    return top - 1


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPort(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


class Ruleset:
    """A ruleset being built; ``restrict()`` applies it to this process for good.

    ``files``: handle every file right of the ABI; ``network``: deny TCP bind and
    connect (ABI 4+); ``scope``: keep signals and abstract unix sockets inside
    the sandbox (ABI 6+). The structure is sized to the ABI, since an older
    kernel refuses fields it does not know.
    """

    def __init__(self, version: int, *, files: bool, network: bool, scope: bool) -> None:
        self.handled_fs = fs_rights(version) if files else 0
        net = NET_BIND_TCP | NET_CONNECT_TCP if network and version >= 4 else 0
        scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if scope and version >= 6 else 0
        attr = _RulesetAttr(self.handled_fs, net, scoped)
        size = 24 if version >= 6 else 16 if version >= 4 else 8
        fd = sysc.syscall(_CREATE_RULESET, ctypes.byref(attr), size, 0)
        if fd < 0:
            raise sysc.fail("landlock_create_ruleset")
        self.fd = fd

    def allow(self, path: str, rights: int) -> None:
        """Grant ``rights`` beneath ``path`` (on a file: only its file rights)."""
        rights &= self.handled_fs
        if not rights:
            return
        target = os.open(path, os.O_PATH | os.O_CLOEXEC)
        try:
            if not stat.S_ISDIR(os.fstat(target).st_mode):
                rights &= FILE_ONLY
            rule = _PathBeneath(rights, target)
            if sysc.syscall(_ADD_RULE, self.fd, _RULE_PATH_BENEATH, ctypes.byref(rule), 0) != 0:
                raise sysc.fail(f"landlock_add_rule {path}")
        finally:
            os.close(target)

    def allow_port(self, port: int, rights: int) -> None:
        rule = _NetPort(rights, port)
        if sysc.syscall(_ADD_RULE, self.fd, _RULE_NET_PORT, ctypes.byref(rule), 0) != 0:
            raise sysc.fail(f"landlock_add_rule port {port}")

    def restrict(self) -> None:
        """Enforce on this process and its future children; needs no_new_privs first."""
        if sysc.syscall(_RESTRICT_SELF, self.fd, 0) != 0:
            raise sysc.fail("landlock_restrict_self")
        os.close(self.fd)
        self.fd = -1


def allow_avoiding(ruleset: Ruleset, path: str, rights: int, hidden: str | None) -> None:
    """Grant ``rights`` beneath ``path`` except beneath ``hidden`` (the daemon's home).

    A rule on a folder covers all of it, so when the home lies inside, the rule
    goes on each sibling along the way down instead.
    """
    if hidden is None or not _contains(path, hidden):
        ruleset.allow(path, rights)
        return
    if os.path.realpath(path) == os.path.realpath(hidden):
        return
    try:
        entries = os.listdir(path)
    except OSError:
        return
    for name in entries:
        child = os.path.join(path, name)
        if os.path.islink(child) and _contains(child, hidden):
            continue  # a link back up: its target is walked under its real name, or not at all
        allow_avoiding(ruleset, child, rights, hidden)


def _contains(folder: str, path: str) -> bool:
    folder, path = os.path.realpath(folder), os.path.realpath(path)
    return path == folder or path.startswith(folder.rstrip("/") + "/")
