"""The jail's seccomp filter: no model allocates disk faster than the ``disk_mb`` sampler
can see (``runs/jail/seccomp.py``), and none goes without the filter unnoticed.

Each model reports what each way of allocating answered; sizes stay at 1 MiB.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import platform
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.models import Limits
from orchestrator.runs import sandbox as sandbox_module
from orchestrator.runs.jail import enter, seccomp
from orchestrator.runs.sandbox import ProcessResult, ProcessSpec, Sandbox
from orchestrator.runs.spawner import Spawner

MACHINE = platform.machine()
pytestmark = pytest.mark.skipif(MACHINE not in seccomp.ARCHES, reason=f"no filter for {MACHINE}")

ALLOCATE = """\
import ctypes, fcntl, json, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
numbers = json.loads(sys.argv[1])

def call(number, *args):
    args = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    return "ok" if libc.syscall(ctypes.c_long(number), *args) >= 0 else ctypes.get_errno()

fd = os.open("blob", os.O_CREAT | os.O_RDWR, 0o644)
seen = {"fallocate": call(numbers["fallocate"], fd, 0, 0, 1 << 20)}
space_resv = struct.pack("hhxxxxqqiI16x", 0, 0, 0, 1 << 20, 0, 0)  # l_start 0, l_len 1 MiB
for name, cmd in numbers["ioctls"].items():
    try:
        fcntl.ioctl(fd, cmd, space_resv)
        seen[name] = "ok"
    except OSError as exc:
        seen[name] = exc.errno
seen["io_uring_setup"] = call(425, 1, ctypes.create_string_buffer(120))
if numbers["x32"]:
    seen["x32 fallocate"] = call(0x40000000 | numbers["fallocate"], fd, 0, 0, 1 << 20)
seen["allocated"] = os.fstat(fd).st_blocks * 512
os.posix_fallocate(fd, 0, 1 << 20)  # glibc writes a byte per block instead
seen["posix_fallocate"] = [os.fstat(fd).st_size, os.fstat(fd).st_blocks * 512]
print(json.dumps(seen))
"""

I386 = """\
import ctypes, mmap, os
code = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
code.write(bytes.fromhex("b814000000cd80c3"))  # mov eax, 20 (i386 getpid); int 0x80; ret
getpid = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(code)))
print(getpid() == os.getpid(), flush=True)
"""

STATUS = "print([line for line in open('/proc/self/status') if line.startswith('Seccomp:')])\n"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox(use_cgroups=None, standby=1)
    yield sb
    sb.close()


async def run(
    sandbox: Sandbox, folder: Path, source: str, *args: str
) -> tuple[ProcessResult, str, str]:
    folder.mkdir(exist_ok=True)
    (folder / "model.py").write_text(source)
    spec = ProcessSpec(
        argv=[sys.executable, "model.py", *args], cwd=str(folder),
        env={"PATH": os.environ["PATH"]}, stdin=None, stdout=str(folder / "stdout"),
        stderr=str(folder / "stderr"), limits=Limits(disk_mb=64, timeout_seconds=30),
        label=f"seccomp-{folder.name}",
    )  # fmt: skip
    result = await (await sandbox.start(spec)).wait()
    return result, (folder / "stdout").read_text(), (folder / "stderr").read_text()


async def test_no_call_allocates_disk_without_writing_and_posix_fallocate_still_works(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """``fallocate`` took ~1 ms per GiB past a 50 MiB limit; the VFS's preallocation
    ioctls and an io_uring ring do the same without calling it."""
    arch = seccomp.ARCHES[MACHINE]
    names = ("FS_IOC_RESVSP", "FS_IOC_RESVSP64", "FS_IOC_ZERO_RANGE")
    numbers = {
        "fallocate": arch.fallocate,
        "ioctls": dict(zip(names, seccomp.preallocating_ioctls(MACHINE), strict=True)),
        "x32": arch.x32,
    }
    result, out, err = await run(sandbox, tmp_path / "m", ALLOCATE, json.dumps(numbers))
    assert result.exit_code == 0, err
    seen = json.loads(out)
    assert seen.pop("allocated") == 0
    assert seen.pop("posix_fallocate")[0] == 1 << 20  # the fallback wrote it
    expected = dict.fromkeys(["fallocate", *names], errno.EOPNOTSUPP)
    expected["io_uring_setup"] = errno.ENOSYS
    if arch.x32:
        expected["x32 fallocate"] = errno.ENOSYS
    assert seen == expected


@pytest.mark.skipif(MACHINE != "x86_64", reason="int 0x80 is x86's")
async def test_a_system_call_of_another_abi_kills_the_model(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """i386's ``int 0x80`` from a 64-bit process: other numbers (fallocate is 324), which a
    filter of x86_64's numbers would let through."""
    control = tmp_path / "control.py"
    control.write_text(I386)
    argv = [sys.executable, str(control)]
    bare = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True)
    if bare.stdout.strip() != "True":
        pytest.skip(f"this kernel runs no i386 calls ({bare.returncode}): nothing to stop")
    result, out, _ = await run(sandbox, tmp_path / "m", I386)
    assert (result.signal, out) == (signal.SIGSYS, "")


def test_the_zygote_probes_the_filter() -> None:
    spawner = Spawner()
    try:
        assert spawner.probe({"mount": False})["seccomp"] == "ok"
    finally:
        spawner.close()


@pytest.mark.parametrize("planned", [None, True, False], ids=["default", "true", "false"])
async def test_the_plan_decides_whether_models_are_filtered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planned: bool | None
) -> None:
    """Without ``seccomp`` in the plan a model is filtered; only ``false`` (a host where
    the probe found no seccomp) goes without, as a plan without Landlock does."""
    detect = sandbox_module.detect_isolation

    def planning(*args: object) -> tuple[object, dict[str, object]]:
        isolation, plan = detect(*args)  # type: ignore[arg-type]
        return isolation, plan if planned is None else {**plan, "seccomp": planned}

    monkeypatch.setattr(sandbox_module, "detect_isolation", planning)
    sb = Sandbox(use_cgroups=None, standby=1)
    try:
        result, out, err = await run(sb, tmp_path / "m", STATUS)
    finally:
        sb.close()
    assert result.exit_code == 0, err
    assert out.strip() == str(["Seccomp:\t0\n" if planned is False else "Seccomp:\t2\n"])


def test_a_jail_that_cannot_install_the_filter_refuses_its_run() -> None:
    """As with Landlock: a plan that asks for the filter never runs a model without it."""
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(report_r)
            seccomp._COMPILED = None  # as on a machine the filter does not know
            enter._become({"seccomp": True}, lambda: b"", report_w)
        finally:
            os._exit(99)
    os.close(report_w)
    with os.fdopen(report_r, "rb") as report:
        said = report.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == enter.REFUSED
    assert f"seccomp: no filter for machine {MACHINE!r}" in json.loads(said)["error"]
