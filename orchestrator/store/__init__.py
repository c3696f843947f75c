"""Persistence: SQLite rows through repositories, large bytes as files (``blobs``).

``Store.read`` gives repositories on the read-only connection;
``async with store.write() as w`` gives the same repositories inside one
``BEGIN IMMEDIATE`` transaction on the single writer connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from orchestrator.disk import DiskMonitor
from orchestrator.errors import DiskFull
from orchestrator.store.acceptance import AcceptanceRepo
from orchestrator.store.apps import AppRepo, HistoryRepo
from orchestrator.store.db import Connection, Database
from orchestrator.store.ensembles import EnsembleRepo
from orchestrator.store.executables import ExecutableRepo
from orchestrator.store.experiments import ExperimentRepo, InputRepo, InputSetRepo
from orchestrator.store.heavy import HeavyReads
from orchestrator.store.overview import OverviewRepo
from orchestrator.store.runs import RunRepo
from orchestrator.store.secrets import SecretsRepo
from orchestrator.store.shadow_tests import ShadowTestRepo
from orchestrator.store.switchback_tests import SwitchbackRepo
from orchestrator.store.uploads import Upload, UploadRepo
from orchestrator.store.versions import InstanceRepo, VersionRepo

__all__ = ["Repos", "Store", "Upload"]

log = logging.getLogger("orch.store")
T = TypeVar("T")
RETRY_SECONDS = 5.0


class Repos:
    """All repositories bound to one connection."""

    def __init__(self, conn: Connection) -> None:
        self.apps = AppRepo(conn)
        self.history = HistoryRepo(conn)
        self.executables = ExecutableRepo(conn)
        self.versions = VersionRepo(conn)
        self.instances = InstanceRepo(conn)
        self.runs = RunRepo(conn)
        self.uploads = UploadRepo(conn)
        self.inputs = InputRepo(conn)
        self.input_sets = InputSetRepo(conn)
        self.experiments = ExperimentRepo(conn)
        self.overview = OverviewRepo(conn)
        self.secrets = SecretsRepo(conn)
        self.acceptance = AcceptanceRepo(conn)
        self.ensembles = EnsembleRepo(conn)
        self.switchback = SwitchbackRepo(conn)
        self.shadow_tests = ShadowTestRepo(conn)


class Store:
    def __init__(self, path: Path, disk: DiskMonitor | None = None) -> None:
        self.db = Database(path, disk)
        self.disk = self.db.disk
        """The disk under the database: its writes give up the reserve when it fills."""
        self.heavy = HeavyReads(path)
        """Long reads on their own thread (``await store.heavy.call(work)``)."""
        self._read: Repos | None = None

    async def open(self) -> None:
        await self.db.open()
        self._read = Repos(self.db.reader)

    async def close(self) -> None:
        self.heavy.close()
        await self.db.close()
        self._read = None

    @property
    def read(self) -> Repos:
        assert self._read is not None, "store is not open"
        return self._read

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Repos]:
        async with self.db.write() as conn:
            yield Repos(conn)

    async def until_written(self, write: Callable[[], Awaitable[T]]) -> T:
        """Run ``write`` until it lands, waiting for room while the disk is full.

        For the writes a run's life must never lose (its claim, its end): a run left
        ``running`` in the database is worse than one recorded late. Each ``DiskFull``
        already cost the reserve; the next try comes when space returns (or 5 s later).
        """
        while True:
            try:
                return await write()
            except DiskFull as exc:
                log.warning("a run's record waits for disk space: %s", exc.message)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.disk.wait_for_space(), RETRY_SECONDS)

    @asynccontextmanager
    async def single(self) -> AsyncIterator[Repos]:
        """For one write statement (a run's insert, claim, finish): no BEGIN/COMMIT."""
        async with self.db.single() as conn:
            yield Repos(conn)
