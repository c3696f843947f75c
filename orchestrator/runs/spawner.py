"""The daemon's end of the jail: a zygote that clones standbys, and their handles.

The zygote (``runs/jail/zygote.py``) is started once; each request sends it a
standby's two pipes (the command it will read, the report it will write) and
gets back the pid of a new standby that is *our* child. When the zygote cannot
be used (it died and cannot be restarted, or the host refuses ``CLONE_PARENT``),
each standby is its own ``python -I -S`` instead: slower to start, same jail.

A standby's plan is the daemon's shared plan plus a few fields of its own (its
cgroup, its uid). The zygote is told each shared plan once and numbers it; a
standby's request then names the number and carries its own fields as ``marshal``
data the standby decodes after the clone. So the zygote runs no codec between two clones:
every clone write-protects all of its memory, and its JSON codec touched ~95 pages
a request, each a page fault to copy (0.3 of the 0.8 ms of CPU a standby cost it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import marshal
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RUNS_DIR = Path(__file__).resolve().parent
"""Holds the ``jail`` package, the only thing the jail's interpreter may import."""
BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); from jail.zygote import main; main(sys.argv[2:])"
)


class Child:
    """A process the daemon must reap itself: what ``subprocess.Popen`` offered, for a
    standby the zygote cloned. ``popen`` is kept when there is one, so that
    ``subprocess`` never reaps the pid behind our back."""

    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid, self.popen = pid, popen
        self._returncode: int | None = None

    @property
    def returncode(self) -> int | None:
        return self._returncode

    @returncode.setter
    def returncode(self, code: int | None) -> None:
        self._returncode = code
        if self.popen is not None:
            self.popen.returncode = code

    def poll(self) -> int | None:
        if self._returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -signal.SIGKILL
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self._returncode

    def kill(self) -> None:
        if self._returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def wait(self) -> int:
        while self._returncode is None:
            try:
                _, status = os.waitpid(self.pid, 0)
            except ChildProcessError:
                self.returncode = -signal.SIGKILL
            else:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self._returncode


class Spawner:
    """Makes standbys: ``standby(plan)`` returns the child, the write end of its
    command pipe and the read end of its report pipe. Thread-safe."""

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable
        self._lock = threading.Lock()
        self._zygote: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._broken: str | None = None
        self._numbers: dict[str, int] = {}
        """The shared plans this zygote was told (as JSON), and the number it gave each."""
        with self._lock:
            self._start()

    def standby(self, plan: dict[str, Any], own: dict[str, Any]) -> tuple[Child, int, int]:
        """A standby for the shared ``plan`` with its ``own`` fields on top."""
        commands, commands_w = os.pipe()
        report_r, report = os.pipe()
        try:
            with self._lock:
                child = self._clone(plan, own, commands, report) or self._single(commands, report)
        except BaseException:
            os.close(commands_w)
            os.close(report_r)
            raise
        finally:
            os.close(commands)
            os.close(report)
        os.set_blocking(report_r, False)
        if child.popen is not None:  # no zygote: the plan goes first, on the same pipe
            os.write(commands_w, json.dumps({**plan, **own}).encode() + b"\n")
        return child, commands_w, report_r

    def probe(self, plan: dict[str, Any]) -> dict[str, Any]:
        """Which protections work here (see ``jail.zygote.probe``)."""
        with self._lock:
            reply = self._ask({"op": "probe", "plan": plan}, [])
        if reply is None or "probe" not in reply:
            raise OSError(f"the jail could not probe this host: {self._broken or reply}")
        return dict(reply["probe"])

    def close(self) -> None:
        with self._lock:
            self._stop()

    # -- zygote --------------------------------------------------------------------

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._zygote = subprocess.Popen(
                [self.python, "-I", "-S", "-c", BOOT, str(RUNS_DIR), "zygote",
                 str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                env={}, cwd="/", process_group=0,
            )  # fmt: skip
        except OSError as exc:
            ours.close()
            self._broken = f"cannot start {self.python}: {exc}"
            log.error("jail zygote: %s", self._broken)
            return
        finally:
            theirs.close()
        self._control, self._broken, self._numbers = ours, None, {}

    def _stop(self) -> None:
        if self._control is not None:
            self._control.close()  # EOF: the zygote exits
            self._control = None
        if self._zygote is not None:
            try:
                self._zygote.wait(5)
            except subprocess.TimeoutExpired:
                self._zygote.kill()
                self._zygote.wait()
            self._zygote = None

    def _ask(
        self, request: dict[str, Any] | Callable[[], bytes], fds: list[int]
    ) -> dict[str, Any] | None:
        """One round trip; a dead zygote is restarted once. ``request`` is JSON to send,
        or makes the message (for this zygote: it is asked again after a restart)."""
        for _ in range(2):
            if self._control is None:
                self._start()
            if self._control is None:
                return None
            try:
                message = request() if callable(request) else json.dumps(request).encode()
                data = self._exchange(message, fds)
            except OSError as exc:
                data, self._broken = b"", f"zygote unreachable: {exc}"
            if data:
                return dict(json.loads(data))
            log.warning("jail zygote gone (%s); restarting it", self._broken or "EOF")
            self._stop()
        return None

    def _exchange(self, message: bytes, fds: Sequence[int] = ()) -> bytes:
        """Send one message (with ``fds``) to the running zygote; its answer (b"" at EOF)."""
        assert self._control is not None
        socket.send_fds(self._control, [message], fds)
        return self._control.recv(1 << 20)

    def _clone(
        self, plan: dict[str, Any], own: dict[str, Any], commands: int, report: int
    ) -> Child | None:
        shared, fields = json.dumps(plan, sort_keys=True), marshal.dumps(own)

        def request() -> bytes:
            number = self._number(shared)
            if number is None:
                raise OSError("the zygote did not take the plan")
            return b"standby\0%d\0%s" % (number, fields)

        reply = self._ask(request, [commands, report])
        if reply is None:
            return None
        if "error" in reply:
            log.warning("jail zygote could not make a standby: %s", reply["error"])
            return None
        return Child(int(reply["pid"]))

    def _number(self, shared: str) -> int | None:
        """The number this zygote gave the shared plan ``shared`` (JSON), told it if new."""
        if shared not in self._numbers:
            answer = self._exchange(b'{"op": "plan", "plan": %s}' % shared.encode())
            reply = json.loads(answer or b"{}")
            if "plan" not in reply:
                return None
            self._numbers[shared] = int(reply["plan"])
        return self._numbers[shared]

    def _single(self, commands: int, report: int) -> Child:
        """A standby of its own interpreter (start-up ~20 ms): the zygote's fallback."""
        popen = subprocess.Popen(
            [self.python, "-I", "-S", "-c", BOOT, str(RUNS_DIR), "single", str(report)],
            stdin=commands, stdout=subprocess.DEVNULL, pass_fds=[report], env={}, cwd="/",
        )  # fmt: skip
        return Child(popen.pid, popen)
