"""The daemon's footprint in its home: the lock, ``daemon.json`` and the API key.

One daemon per home is enforced with an ``flock`` held for the daemon's life:
the kernel drops it when the process dies, so a ``daemon.json`` left by a
crashed daemon is recognised as stale and replaced instead of blocking start.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from orchestrator.errors import Conflict
from orchestrator.home import Home
from orchestrator.ids import new_token


@dataclass(frozen=True)
class DaemonInfo:
    url: str
    pid: int
    started_at: float
    home: str

    @classmethod
    def read(cls, home: Home) -> DaemonInfo | None:
        try:
            data = json.loads(home.daemon_file.read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None


class HomeLock:
    """Exclusive ownership of a home directory by one running daemon."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        fh = open(self.home.root / "daemon.lock", "a+")  # noqa: SIM115 - held for the daemon's life
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            info = DaemonInfo.read(self.home)
            where = f" at {info.url} (pid {info.pid})" if info else ""
            raise Conflict(
                f"another orch daemon is already running on {self.home.root}{where}"
            ) from None
        self._fh = fh

    def publish(self, url: str) -> None:
        """Write ``daemon.json`` atomically once the server is listening."""
        info = DaemonInfo(
            url=url, pid=os.getpid(), started_at=time.time(), home=str(self.home.root)
        )
        tmp = self.home.daemon_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info.__dict__, indent=2) + "\n")
        os.replace(tmp, self.home.daemon_file)

    def release(self) -> None:
        info = DaemonInfo.read(self.home)
        if info is not None and info.pid == os.getpid():
            self.home.daemon_file.unlink(missing_ok=True)
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def load_or_create_api_key(home: Home) -> str:
    """The bearer key, generated at first start, readable only by the user."""
    path: Path = home.api_key_file
    if path.exists():
        key = path.read_text().strip()
        if key:
            os.chmod(path, 0o600)
            return key
    key = new_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key
