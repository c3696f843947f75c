"""Byte-compile an unpacked package in a child process under limits, never in the daemon.

Compiling is an optimisation (see ``unpack._compile``), but what it costs is set by the
package: a gzipped 8 KB package can hold an 8 MB module that takes ~3 GB of memory and
9 s of CPU to compile, and compiling holds the GIL. Done in the daemon, that froze every
request and every run's end, and grew the daemon by gigabytes. So the work happens in
``bytecode_worker``, one process per package, on the interpreter runs use, under an
address-space limit and a wall-clock deadline, at the lowest priority once it has
taken longer than a normal package does; the daemon's thread only waits for it.

A limit never refuses a package: a module over the memory limit, or not reached by the
deadline, is left without bytecode and compiled by the model at run time, exactly as a
module that does not compile. What the limits cost is logged.

Starting the worker's interpreter takes ~25 ms (and its first compile ~8 ms more than
a warm one's), against ~1.5 ms to compile a normal package, so, like the runs' jails
(``runs/launch.py``), the next worker is started ahead, after each compile, and waits on
its stdin, warmed up: a push hands it the folder with one write. A waiting worker exits
when the daemon does (its stdin closes).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MEMORY_MB = 512
"""The worker's address space: ~1.4 MB of the worst source (a list of 4 million ints is
~370 MB per MB), and well over what real modules need (a 6 MB generated module: 270 MB)."""
TIMEOUT_SECONDS = 60.0
"""Wall clock for one package, waiting for a slot included: the longest a push waits."""
NICE_AFTER_SECONDS = 0.5
"""A worker still compiling after this long drops to the lowest priority (nice 19): a
normal package is done long before, at the priority pushes always had, and a huge
one then takes only the CPU that runs leave."""
SLOTS = 2
"""Packages compiled at once: concurrent pushes cannot add up to more than
``SLOTS * MEMORY_MB`` (later ones wait for a slot, within their deadline)."""

WORKER = Path(__file__).with_name("bytecode_worker.py")
_PARTIAL = re.compile(r"\.pyc\.\d+\Z")
"""What ``py_compile`` writes before renaming it into place (``importlib``'s
``_write_atomic``): left behind by a worker killed at the deadline."""


@dataclass(frozen=True)
class CompileReport:
    compiled: int = 0
    failed: int = 0
    """Modules that did not compile: syntax errors, or over the memory limit."""
    over_memory: int = 0
    stopped: str | None = None
    """Why the worker did not finish (deadline, no slot, a crash); None if it did."""


def compile_tree(
    root: Path, *, memory_mb: int | None = None, timeout: float | None = None
) -> CompileReport:
    """Byte-compile ``root``'s modules in place, in a limited child; blocks (call it off
    the event loop). Never raises for what the package holds: see the module's docstring.

    The worker runs ``sys.executable``, the interpreter runs use (environments are made
    from it), so the cache tag of the bytecode is theirs; ``-I`` so that no ``PYTHON*``
    variable of the daemon (a ``PYTHONPYCACHEPREFIX``) moves or changes it.
    """
    memory_mb = memory_mb or MEMORY_MB
    limit = TIMEOUT_SECONDS if timeout is None else timeout
    deadline = time.monotonic() + limit
    if not _slots.acquire(timeout=limit):
        report = CompileReport(stopped=f"no compile slot free within {limit:g} s")
    else:
        try:
            report = _compile(root, _argv(memory_mb, limit), limit, deadline)
        finally:
            _slots.release()
    if report.stopped:
        log.warning(
            "package %s: byte-compiling stopped: %s; modules without bytecode are compiled "
            "by the model at each run",
            root,
            report.stopped,
        )
    elif report.over_memory:
        log.warning(
            "package %s: %d module(s) over the %d MB compile limit, left to be compiled by "
            "the model at each run",
            root,
            report.over_memory,
            memory_mb,
        )
    return report


def _argv(memory_mb: int, limit: float) -> tuple[str, ...]:
    """The worker's command; its CPU limit is a backstop, should the daemon die."""
    memory, cpu_seconds = memory_mb * 1024 * 1024, max(1, int(limit) + 1)
    return (sys.executable, "-I", "-S", str(WORKER), str(memory), str(cpu_seconds))


def _compile(root: Path, argv: tuple[str, ...], limit: float, deadline: float) -> CompileReport:
    try:
        worker = _standby.take(argv)
    except OSError as exc:  # no process could be started (EAGAIN, ENOMEM)
        return CompileReport(stopped=f"the compiler could not start: {exc}")
    with worker:
        try:
            out, err = _wait(worker, os.fsencode(root) + b"\n", deadline)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.communicate()
            _remove_partial(root)
            return CompileReport(stopped=f"the {limit:g} s deadline passed")
    try:
        compiled, failed, over_memory = (int(n) for n in out.split())
        return CompileReport(compiled, failed, over_memory)
    except ValueError:  # not three numbers: it did not finish
        _remove_partial(root)
        said = err.decode(errors="replace").strip().splitlines()[-1:]
        return CompileReport(
            stopped=f"the compiler ended early ({(said or [f'exit {worker.returncode}'])[0]})"
        )


def _wait(worker: subprocess.Popen[bytes], folder: bytes, deadline: float) -> tuple[bytes, bytes]:
    """Hand ``folder`` to the worker and wait for it, past ``NICE_AFTER_SECONDS`` at the
    lowest priority; then the next worker starts, in the background (``prepare``)."""
    first = min(NICE_AFTER_SECONDS, max(0.0, deadline - time.monotonic()))
    try:
        return worker.communicate(folder, timeout=first)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):  # it has just ended
            os.setpriority(os.PRIO_PROCESS, worker.pid, 19)
        return worker.communicate(timeout=max(0.0, deadline - time.monotonic()))
    finally:
        threading.Thread(target=_standby.prepare, name="bytecode-standby", daemon=True).start()


class _Standby:
    """One worker started ahead, for the next package (see the module's docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: subprocess.Popen[bytes] | None = None
        self._argv: tuple[str, ...] = ()
        atexit.register(self.close)

    def take(self, argv: tuple[str, ...]) -> subprocess.Popen[bytes]:
        """The waiting worker if it has ``argv``'s limits and is alive, else a new one."""
        with self._lock:
            ready, self._ready, same = self._ready, None, argv == self._argv
            self._argv = argv
        if ready is not None and (not same or ready.poll() is not None):
            _dismiss(ready)
            ready = None
        return ready or _start(argv)

    def prepare(self) -> None:
        """Start the next worker, with the limits of the last one taken."""
        with self._lock:
            if self._ready is not None or not self._argv:
                return
            argv = self._argv
        try:
            worker = _start(argv)
        except OSError:
            return  # the next push starts its own
        with self._lock:
            kept = self._ready is None and argv == self._argv
            if kept:
                self._ready = worker
        if not kept:  # another push prepared one first, or the limits changed
            _dismiss(worker)

    def close(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is not None:
            _dismiss(ready)


def _start(argv: tuple[str, ...]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _dismiss(worker: subprocess.Popen[bytes]) -> None:
    """A waiting worker exits on an empty stdin; reaped here so no zombie stays."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        worker.communicate(timeout=5)
    if worker.poll() is None:
        worker.kill()
        worker.wait()


_slots = threading.BoundedSemaphore(SLOTS)
_standby = _Standby()


def _remove_partial(root: Path) -> None:
    """Half-written bytecode of a killed worker is no package file, and no run would
    ever use or remove it from the read-only tree."""
    for dirpath, _dirs, files in os.walk(root):  # symlinked folders are not entered
        if os.path.basename(dirpath) != "__pycache__":
            continue
        for name in files:
            if _PARTIAL.search(name):
                Path(dirpath, name).unlink(missing_ok=True)
