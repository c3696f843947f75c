"""``daemon.json``: where a home's running daemon listens, as clients read it.

Its own module because every CLI command reads it before its first request: the
daemon's side of the home (``lifecycle``: the lock, start-up checks, the settings)
would cost each command the import of the config and the domain models.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from orchestrator.home import Home


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
