"""A seccomp filter against the system calls that allocate disk without writing to it.

``disk_mb`` is sampled (``runs/disk.py``): between two samples a run is assumed unable
to make its files grow faster than it can write (4 GiB/s, page cache included), and
the next sample is put off accordingly (up to 2 s under the default limit). Some calls
reserve blocks without writing them, ~1 GiB per millisecond on ext4: ten
``posix_fallocate`` calls of 1 GiB ran a 50 MiB limit 200 times over before the
sample that caught them, enough to fill the host's disk. The filter (installed once in
the zygote, whose standbys inherit it, else by each standby: see ``ensure``; kept
across ``exec`` and by everything the model starts) answers:

- ``fallocate``: ``EOPNOTSUPP``, as a file system without it does; glibc's
  ``posix_fallocate`` then falls back to writing a byte per block, at the pace the
  sampler accounts for (punching holes goes too: callers fall back as for any such
  file system);
- ``ioctl`` ``FS_IOC_RESVSP``, ``FS_IOC_RESVSP64``, ``FS_IOC_ZERO_RANGE``: the same
  allocation through XFS's old ioctls, which the VFS serves for every file system
  (``ioctl_preallocate``): ``EOPNOTSUPP``;
- ``io_uring_setup``: ``ENOSYS``, as a kernel without io_uring: a ring's
  ``IORING_OP_FALLOCATE`` allocates with no system call a filter could see;
- a system call of another ABI than the native one (i386 through ``int 0x80`` on
  x86_64, AArch32 on arm64...: other numbers, unfiltered) kills the process; on x86_64
  a call of the x32 ABI (native arch, numbers with bit 30 set) gets ``ENOSYS``, as on
  the kernels built without it.

Everything else is allowed, and the kernel's per-syscall cache (5.11+) lets it through
without running the filter, but ``ioctl``, whose answer depends on its command (no cost
measurable here, per run or per call). Not filtered, since none allocates faster than
writing: ``ftruncate`` (sparse: no blocks), ``copy_file_range`` and ``sendfile`` (copies
through the page cache; no reflinks on ext4, and where there are, shared extents take no
new space), ``mmap`` and ``MADV_POPULATE_WRITE`` (page cache, charged to the run's memory
cgroup until written back: 0.4-2.6 GiB/s measured here, as ``write``).
"""

from __future__ import annotations

import ctypes
import errno
import platform
import sys

from . import sysc

_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1 << 2
"""Keep the model's speculation mitigations as they were without a filter (kernels before
5.16 turned on SSBD for every filtered process: slower models, for nothing we filter)."""
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2

_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000

_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JSET = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET = 0x06  # BPF_RET | BPF_K
_NR, _ARCH, _ARGS = 0, 4, 16
"""Offsets in ``struct seccomp_data``."""

_X32_BIT = 0x40000000
IO_URING_SETUP = 425
"""The same number on every architecture."""


class _Arch:
    """A machine's audit arch and the numbers the filter looks at."""

    def __init__(
        self, audit: int, fallocate: int, ioctl: int, seccomp: int, *, x32: bool = False
    ) -> None:
        self.audit, self.fallocate, self.ioctl, self.seccomp = audit, fallocate, ioctl, seccomp
        self.x32 = x32


ARCHES = {
    "x86_64": _Arch(0xC000003E, 285, 16, 317, x32=True),
    "aarch64": _Arch(0xC00000B7, 47, 29, 277),
    "riscv64": _Arch(0xC00000F3, 47, 29, 277),
    "ppc64le": _Arch(0xC0000015, 309, 54, 358),
    "s390x": _Arch(0x80000016, 314, 54, 348),
}
"""``AUDIT_ARCH_*`` and system call numbers (``fallocate``, ``ioctl``, ``seccomp``)."""


def ioctl_write(kind: str, number: int, size: int, machine: str) -> int:
    """``_IOW(kind, number, size)`` as ``machine`` encodes it (powerpc differs)."""
    direction = 4 << 29 if machine.startswith("ppc") else 1 << 30
    return direction | size << 16 | ord(kind) << 8 | number


def preallocating_ioctls(machine: str) -> tuple[int, ...]:
    """``FS_IOC_RESVSP``, ``FS_IOC_RESVSP64``, ``FS_IOC_ZERO_RANGE`` (``struct space_resv``:
    48 bytes)."""
    return tuple(ioctl_write("X", n, 48, machine) for n in (40, 42, 57))


def program(machine: str) -> list[tuple[int, int, int, int]]:
    """The filter for ``machine``: (code, jump if true, jump if false, k) instructions."""
    arch = ARCHES[machine]
    low = _ARGS + 8 + (4 if sys.byteorder == "big" else 0)  # args[1]: ioctl's cmd (32 bits)
    code: list[tuple[int, str | int, str | int, int]] = [
        (_LD_W_ABS, 0, 0, _ARCH),
        (_JEQ, 0, "kill", arch.audit),
        (_LD_W_ABS, 0, 0, _NR),
    ]
    if arch.x32:
        code.append((_JSET, "enosys", 0, _X32_BIT))
    code += [
        (_JEQ, "eopnotsupp", 0, arch.fallocate),
        (_JEQ, "enosys", 0, IO_URING_SETUP),
        (_JEQ, 0, "allow", arch.ioctl),
        (_LD_W_ABS, 0, 0, low),
        *((_JEQ, "eopnotsupp", 0, cmd) for cmd in preallocating_ioctls(machine)),
    ]
    ends = {
        "allow": _RET_ALLOW,
        "eopnotsupp": _RET_ERRNO | errno.EOPNOTSUPP,
        "enosys": _RET_ERRNO | errno.ENOSYS,
        "kill": _RET_KILL_PROCESS,
    }
    at = {label: len(code) + n for n, label in enumerate(ends)}

    def jump(target: str | int, here: int) -> int:
        return target if isinstance(target, int) else at[target] - here - 1

    resolved = [(c, jump(t, i), jump(f, i), k) for i, (c, t, f, k) in enumerate(code)]
    return resolved + [(_RET, 0, 0, value) for value in ends.values()]


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _compile(machine: str) -> tuple[_SockFprog, ctypes.Array[_SockFilter]] | None:
    if machine not in ARCHES:
        return None
    instructions = program(machine)
    array = (_SockFilter * len(instructions))(*(_SockFilter(*i) for i in instructions))
    return _SockFprog(len(instructions), array), array


_MACHINE = platform.machine()
_COMPILED = _compile(_MACHINE)
"""Made when the jail's code is imported (the array is kept alongside: the program
points into it)."""
_installed = False


def installed() -> bool:
    """Whether this process is filtered already: a standby the zygote cloned after
    ``ensure`` inherited the filter (and this flag) with the rest of its memory."""
    return _installed


def ensure() -> None:
    """``no_new_privs`` and the filter, unless this process has them already.

    The zygote calls it once, when a plan asks for the filter: its standbys then
    inherit it, so a run pays nothing for it (installing costs ~0.1 ms: the kernel
    checks and compiles the program, and works out which calls it always allows). A
    standby calls it too, so one without a filtered zygote (its own interpreter, or a
    zygote whose install failed) installs it itself or refuses the run.
    """
    if not _installed:
        sysc.no_new_privs()
        install()


def install() -> None:
    """Filter this thread and everything it starts, for good; needs ``no_new_privs``.

    Raises ``OSError`` when the kernel refuses (no ``CONFIG_SECCOMP_FILTER``, a policy
    that denies ``seccomp`` itself) or the machine is not one the filter knows.
    """
    global _installed
    if _COMPILED is None:
        raise OSError(errno.ENOSYS, f"seccomp: no filter for machine {_MACHINE!r}")
    prog = ctypes.byref(_COMPILED[0])
    number = ARCHES[_MACHINE].seccomp
    mode = _SECCOMP_SET_MODE_FILTER
    result = sysc.syscall(number, mode, _SECCOMP_FILTER_FLAG_SPEC_ALLOW, prog)
    if result != 0 and ctypes.get_errno() == errno.EINVAL:  # before 4.17: no such flag
        result = sysc.syscall(number, mode, 0, prog)
    if result != 0 and ctypes.get_errno() == errno.ENOSYS:  # before 3.17: prctl only
        result = sysc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(_COMPILED[0]))
    if result != 0:
        raise sysc.fail("seccomp")
    _installed = True


def check() -> None:
    """``ensure``, then prove it works: ``fallocate`` on no file at all answers
    ``EOPNOTSUPP`` (the filter runs before the kernel looks at the descriptor; without
    it, ``EBADF``). For the zygote's probe, in a throw-away child."""
    ensure()
    if sysc.syscall(ARCHES[_MACHINE].fallocate, -1, 0, 0, 4096) == 0:
        raise OSError(errno.EIO, "seccomp: fallocate went through the filter")
    if (found := ctypes.get_errno()) != errno.EOPNOTSUPP:
        raise OSError(found, f"seccomp: fallocate answered {errno.errorcode.get(found, found)}")
