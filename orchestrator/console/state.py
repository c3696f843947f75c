"""What the console keeps while the daemon runs: the services it reads through, its
sessions, the live feed of run changes, and the flag that ends its streams at stop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from orchestrator.console.live import RunFeed
from orchestrator.console.sessions import Sessions
from orchestrator.runs.search import RunSearch
from orchestrator.services import Services


@dataclass
class Console:
    services: Services
    sessions: Sessions
    search: RunSearch
    feed: RunFeed
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the daemon stops: live streams end, so the server is not kept waiting."""
