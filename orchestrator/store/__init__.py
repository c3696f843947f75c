"""Persistence: SQLite rows through repositories, large bytes as files (``blobs``).

``Store.read`` gives repositories on the read-only connection;
``async with store.write() as w`` gives the same repositories inside one
``BEGIN IMMEDIATE`` transaction on the single writer connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from orchestrator.store.apps import AppRepo, HistoryRepo
from orchestrator.store.db import Connection, Database
from orchestrator.store.executables import ExecutableRepo
from orchestrator.store.experiments import ExperimentRepo, InputRepo, InputSetRepo
from orchestrator.store.heavy import HeavyReads
from orchestrator.store.overview import OverviewRepo
from orchestrator.store.runs import RunRepo
from orchestrator.store.uploads import Upload, UploadRepo
from orchestrator.store.versions import InstanceRepo, VersionRepo

__all__ = ["Repos", "Store", "Upload"]


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


class Store:
    def __init__(self, path: Path) -> None:
        self.db = Database(path)
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

    @asynccontextmanager
    async def single(self) -> AsyncIterator[Repos]:
        """For one write statement (a run's insert, claim, finish): no BEGIN/COMMIT."""
        async with self.db.single() as conn:
            yield Repos(conn)
