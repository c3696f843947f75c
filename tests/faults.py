"""Helpers for the fault tests: a small tmpfs the test mounts, a disk filled on purpose,
the CLI as a user runs it, the processes a home left behind, and a daemon that SIGKILLs
itself at one chosen point."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from tests.helpers import ROOT, Daemon

MIB = 1024 * 1024


@contextmanager
def tmpfs(where: Path, size_mb: int, inodes: int | None = None) -> Iterator[Path]:
    """A ``size_mb`` tmpfs (of ``inodes`` files and folders at most, when given) mounted at
    ``where`` for the block, unmounted after (root only; skips, saying why, where mounting
    is impossible)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size_mb}m,mode=0700" + (f",nr_inodes={inodes}" if inodes else "")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        for proc in processes_using(where):  # only what the test started there
            proc.kill()
        psutil.wait_procs(processes_using(where), timeout=10)
        subprocess.run(["umount", str(where)], check=False)
        if os.path.ismount(where):
            subprocess.run(["umount", "-l", str(where)], check=False)


def remount(where: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(where)], check=True)


def fill(folder: Path) -> Path:
    """Write a ballast file until the disk refuses; returns it (delete it to free space)."""
    ballast = folder / "ballast"
    with open(ballast, "ab", buffering=0) as fh:
        for chunk in (MIB, 4096, 512, 1):
            try:
                while True:
                    fh.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return ballast


def free_bytes(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def orch(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def processes_using(where: Path) -> list[psutil.Process]:
    """Live processes whose command line names ``where`` (a daemon started on that home)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.pid != os.getpid() and any(str(where) in a for a in proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


_KILLED_AT = """
import importlib, os, runpy, signal, sys
module, _, name = sys.argv[1].partition(":")
owner, _, method = name.rpartition(".")
cls = getattr(importlib.import_module(module), owner)
async def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
setattr(cls, method, die)
sys.argv = ["orchestrator", *sys.argv[2:]]
runpy.run_module("orchestrator", run_name="__main__", alter_sys=True)
"""


@contextmanager
def killed_at(home: Path, target: str) -> Iterator[httpx.Client]:
    """A client of the real daemon on ``home``, which SIGKILLs itself the moment ``target``
    (``module:Class.method``, an async method) is first called: the request made in the
    block must reach it, and its daemon must be dead when the block ends.

    A SIGKILL sent from outside cannot be aimed at a window of a millisecond (between two
    writes); this one lands exactly there, in a daemon otherwise unchanged."""
    dying = Daemon.start(home, launcher=("-c", _KILLED_AT, target))
    try:
        with dying.client() as api, pytest.raises(httpx.TransportError):
            yield api
        assert dying.process.wait(10) == -signal.SIGKILL
    finally:
        if dying.process.poll() is None:
            dying.kill()
