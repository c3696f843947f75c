"""What the daemon commands make sure of before they act: that the process
``daemon.json`` names still is the daemon (before ``stop`` signals it), and that the
home and the port a daemon is asked to use can be used (before ``start`` spawns it).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import time

import psutil

from orchestrator.cli.output import fail
from orchestrator.config import Settings
from orchestrator.daemon_info import DaemonInfo
from orchestrator.home import Home

CLOCK_SLACK_SECONDS = 2.0
"""How far a process's start time, as the kernel reports it (from the boot time, to the
second), may lie after the ``started_at`` the daemon recorded itself."""


def daemon_process(home: Home, info: DaemonInfo) -> psutil.Process | None:
    """The process ``daemon.json`` names, if it still is that daemon; else None.

    A daemon killed with SIGKILL (or by a crash, or a reboot) leaves its ``daemon.json``
    behind, and its pid goes to the next process the system starts: one of the user's,
    which ``stop`` must never signal. That process is the daemon only if it is alive
    (not a zombie), was started before the daemon wrote ``started_at`` (a reused pid
    belongs to a process started after the daemon died), and a daemon holds the home's
    lock (the kernel drops it when the daemon dies).
    """
    try:
        process = psutil.Process(info.pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        if process.create_time() > info.started_at + CLOCK_SLACK_SECONDS:
            return None
    except psutil.Error:
        return None
    return process if _lock_held(home) else None


def _lock_held(home: Home) -> bool:
    """Whether a daemon holds the home's lock (``Home.lock_file``)."""
    try:
        fd = os.open(home.lock_file, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def forget(home: Home, stale: DaemonInfo) -> None:
    """Remove the ``daemon.json`` of a daemon that is gone; not one a new daemon wrote
    meanwhile."""
    if DaemonInfo.read(home) == stale:
        with contextlib.suppress(OSError):
            home.daemon_file.unlink()


def ended(process: psutil.Process, timeout: float) -> bool:
    """Wait up to ``timeout`` s for ``process`` to end. A zombie has ended: it waits only
    for its parent to collect it (the harness that started the daemon, in tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def usable_home(home: Home) -> Home:
    """The home, made if missing (private to the user, as the daemon makes it: a start that
    fails after this leaves no folder others can read); a path that cannot be one is
    refused naming it."""
    root = home.root
    if root.exists() and not root.is_dir():
        fail(f"home {root} is not a folder")
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno not in _SAID_AT_START:
            fail(f"home {root} cannot be created: {exc.strerror or exc}")
    return home


_SAID_AT_START = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
"""Why a home cannot be made that the start-up checks (``lifecycle.check_home``) name
better: a full disk with the space needed, a read-only file system, a permission."""


def check_port(settings: Settings) -> None:
    """A port asked for (``--port``, ``ORCH_PORT``, ``config.toml``) must be free: said
    here with its number, before a daemon is spawned. Without one the daemon finds a
    free port itself (``ports``); ``0`` is any free one."""
    port = settings.port
    if not port:
        return
    if not 0 < port < 65536:
        fail(f"port {port} is not a TCP port (1-65535, or 0 for any free one)")
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the daemon binds
        probe.bind((settings.host, port))
    except OSError as exc:
        fail(_port_refused(settings.host, port, exc))
    finally:
        probe.close()


def _port_refused(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} is already in use on {host} (by another program or daemon): "
            "choose another (--port, ORCH_PORT or port in config.toml, whichever set it), "
            "or set none to take a free one"
        )
    if exc.errno == errno.EACCES:
        return f"port {port} cannot be used: permission denied (ports below 1024 need root)"
    return f"port {port} cannot be used: {exc.strerror or exc}"
