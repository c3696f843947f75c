"""Where the daemon listens: the same address every start, unless asked otherwise.

Saved URLs, an SDK snippet or a browser tab keep working across restarts only if the
address does not move. So without an explicit port (``--port``, ``ORCH_PORT`` or
``port`` in ``config.toml``), the daemon takes the port it used last (recorded in the
home), else ``DEFAULT_PORT``; only when that is taken does it fall back to a free one,
and records it, so the next start comes back to it. ``--port 0`` asks for any free
port, used once and not recorded (what tests do).

The scheme is kept the same way: a daemon started once with ``--tls`` (or
``ORCH_TLS``, or ``tls`` in ``config.toml``) serves HTTPS at every start after, until
one says ``--no-tls``.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from orchestrator.home import Home

DEFAULT_PORT = 6724
"""``orch`` on a phone keypad."""
_TAKEN = (errno.EADDRINUSE, errno.EACCES)


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart reuses its port
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def listen(host: str, home: Home, requested: int | None) -> socket.socket:
    """A listening socket: on ``requested`` when given, else on the stable port."""
    if requested is not None:
        return bind(host, requested)
    recorded = recorded_port(home)
    for port in dict.fromkeys(p for p in (recorded, DEFAULT_PORT) if p):
        try:
            sock = bind(host, port)
            break
        except OSError as exc:
            if exc.errno not in _TAKEN:
                raise
    else:
        sock = bind(host, 0)
    port = sock.getsockname()[1]
    if port != recorded:
        _record(home, port)
    return sock


def recorded_port(home: Home) -> int | None:
    try:
        port = int(home.port_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def _record(home: Home, port: int) -> None:
    _write(home.port_file, str(port))


def _write(path: Path, value: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{value}\n")
    os.replace(tmp, path)


def recorded_tls(home: Home) -> bool | None:
    """Whether the last daemon of ``home`` served HTTPS; None when none said."""
    try:
        scheme = home.scheme_file.read_text().strip()
    except OSError:
        return None
    return {"https": True, "http": False}.get(scheme)


def record_tls(home: Home, tls: bool) -> None:
    if recorded_tls(home) != tls:
        _write(home.scheme_file, "https" if tls else "http")
