"""Running ``orch`` as people do: a subprocess with pipes, or on a pseudo-terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from subprocess import DEVNULL, PIPE
from typing import Any

from tests.helpers import Daemon, unique

ENV = {
    k: v
    for k, v in os.environ.items()
    if k not in ("ORCH_URL", "ORCH_API_KEY", "ORCH_HOME", "ORCH_APP_ID", "NO_COLOR")
}
ENV["COLUMNS"] = "250"  # wide tables: cells are not cut with "…"
CLI = [sys.executable, "-m", "orchestrator"]


Arg = str | Path | list[str]


def argv_of(args: tuple[Arg, ...]) -> list[str]:
    """Strings are split on spaces (they read like the shell); paths stay whole; lists are
    taken word for word (``["-i", ""]``: an empty argument, as ``-i "$UNSET"`` gives)."""
    return [part for a in args for part in _words(a)]


def _words(arg: Arg) -> list[str]:
    if isinstance(arg, list):
        return arg
    return arg.split() if isinstance(arg, str) else [str(arg)]


def orch(
    daemon: Daemon,
    *args: Arg,
    stdin: str = "",
    code: int | None = 0,
    home: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``orch ARGS --home HOME``; stdin defaults to empty so nothing waits on a terminal."""
    argv = [*CLI, *argv_of(args)]
    if home:
        argv += ["--home", str(daemon.home)]
    proc = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, env={**ENV, **(env or {})}, timeout=90
    )
    if code is not None:
        assert proc.returncode == code, (
            f"{argv} exited {proc.returncode}, wanted {code}\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
    return proc


def orch_json(
    daemon: Daemon, *args: Arg, stdin: str = "", env: dict[str, str] | None = None
) -> Any:
    return json.loads(orch(daemon, *args, "--json", stdin=stdin, env=env).stdout)


def spawn(daemon: Daemon, *args: Arg) -> subprocess.Popen[str]:
    argv = [*CLI, *argv_of(args), "--home", str(daemon.home)]
    return subprocess.Popen(argv, stdin=DEVNULL, stdout=PIPE, stderr=PIPE, text=True, env=ENV)


def new_app(daemon: Daemon, app_dir: Path | None = None) -> str:
    """A fresh app on the daemon, with ``app_dir`` pushed to it when given."""
    app_id = unique("cli")
    orch(daemon, f"app create -a {app_id} -n CLI-test")
    if app_dir is not None:
        orch(daemon, f"app push -a {app_id} --app-dir", app_dir)
    return app_id


class Terminal:
    """``orch`` on a pseudo-terminal: stdin, stdout and stderr are one terminal, as when a
    person types the command. Its own session, so a SIGINT reaches it as Ctrl-C would.
    ``columns`` wide, 40 rows high; ``TERM=xterm`` unless ``env`` says otherwise."""

    def __init__(
        self,
        daemon: Daemon,
        *args: Arg,
        columns: int = 200,
        env: dict[str, str] | None = None,
    ) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        argv = [*CLI, *argv_of(args), "--home", str(daemon.home)]
        env = {k: v for k, v in ENV.items() if k != "COLUMNS"} | {"TERM": "xterm"} | (env or {})
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self._master = master
        self.output = b""

    def read_until(self, text: str, timeout: float = 30) -> str:
        """Everything shown so far, once ``text`` has appeared."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            if time.monotonic() > deadline or not self._read(deadline - time.monotonic()):
                raise AssertionError(f"{text!r} never appeared; shown: {self.text}")
        return self.text

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the terminal's foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        """The exit code and everything shown."""
        deadline = time.monotonic() + timeout
        while self._read(max(0.0, deadline - time.monotonic())):
            pass
        code = self.proc.wait(max(1.0, deadline - time.monotonic()))
        os.close(self._master)
        return code, self.text

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def _read(self, timeout: float) -> bool:
        """Read what is there; False once the terminal is closed (the command ended)."""
        ready, _, _ = select.select([self._master], [], [], min(timeout, 0.5))
        if not ready:
            return timeout > 0.5
        try:
            chunk = os.read(self._master, 65536)
        except OSError:  # EIO: every process holding the terminal has exited
            return False
        self.output += chunk
        return bool(chunk)
