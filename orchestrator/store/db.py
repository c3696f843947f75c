"""SQLite access: one writer connection behind a lock, one read-only reader.

datasette's rule, applied to aiosqlite: every write goes through one
connection, inside ``BEGIN IMMEDIATE``, so writers never race for the lock and
a failed request rolls back whole. Reads use a second connection opened
read-only, so a stray write from a read path fails loudly instead of becoming
a second writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from orchestrator.store.migrations import MIGRATIONS

Row = aiosqlite.Row

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # WAL + NORMAL: durable across app crashes, fsync at checkpoint
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


class Connection:
    """A thin typed wrapper so repositories never see aiosqlite directly."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        async with self._conn.execute(sql, tuple(params)) as cur:
            return await cur.fetchone()

    async def all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        async with self._conn.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        row = await self.one(sql, params)
        return None if row is None else row[0]

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run a statement; returns the number of rows it changed."""
        async with self._conn.execute(sql, tuple(params)) as cur:
            return cur.rowcount

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        await self._conn.executemany(sql, [tuple(r) for r in rows])


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        self._writer = await _connect(str(self.path))
        await migrate(self._writer)
        self._reader = await _connect(f"file:{self.path}?mode=ro", uri=True)

    async def close(self) -> None:
        """Close both connections; their threads must not outlive the daemon."""
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    @property
    def reader(self) -> Connection:
        assert self._reader is not None, "database is not open"
        return Connection(self._reader)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Connection]:
        """One write transaction: ``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK``)."""
        assert self._writer is not None, "database is not open"
        async with self._lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield Connection(self._writer)
            except BaseException:
                await self._writer.rollback()
                raise
            else:
                await self._writer.commit()


async def _connect(target: str, uri: bool = False) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(target, uri=uri, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    for pragma in _PRAGMAS:
        if uri and "journal_mode" in pragma:
            continue  # the writer sets WAL for the file; a read-only handle cannot
        await conn.execute(pragma)
    return conn


async def migrate(conn: aiosqlite.Connection) -> int:
    """Apply the numbered migrations the file has not seen; returns the new version.

    ``PRAGMA user_version`` records how far a database file has come, so an
    old file from an earlier orch is brought forward at start, in order.
    """
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = int(row[0]) if row else 0
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"{conn} has schema version {version}, newer than this orch ({len(MIGRATIONS)})"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script):
                await conn.execute(statement)
            await conn.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()
    return len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";\n") if s.strip()]
