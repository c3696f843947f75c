"""SQLite access: one writer connection behind a lock, one read-only reader.

datasette's rule, applied to aiosqlite: every write goes through one
connection, inside ``BEGIN IMMEDIATE``, so writers never race for the lock and
a failed request rolls back whole. Reads use a second connection opened
read-only (see ``ReaderConnection`` for why it runs on the event loop).

A full disk is no crash: SQLite's "database or disk is full" becomes
``DiskFull`` (the one error callers recognise), after the disk monitor has
given up its reserve; a single statement is then tried once more, so the
writes that end runs still land on a disk that just filled up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from orchestrator.disk import FULL_BYTES, DiskMonitor, is_disk_full
from orchestrator.store.migrations import MIGRATIONS
from orchestrator.threads import give_way_to_the_loop

Row = sqlite3.Row
log = logging.getLogger("orch.store")

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # WAL + NORMAL: durable across app crashes, fsync at checkpoint
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)
_SQLITE_IOERR = 10


class Connection:
    """What repositories see: the same calls on the reader and inside a write."""

    async def one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        rows = await self.all(sql, params)
        return rows[0] if rows else None

    async def all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        raise NotImplementedError

    async def scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        row = await self.one(sql, params)
        return None if row is None else row[0]

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run a statement; returns the number of rows it changed."""
        raise NotImplementedError

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        raise NotImplementedError


class WriterConnection(Connection):
    """The single writer, on aiosqlite's thread: one thread hop per statement."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return list(await self._conn.execute_fetchall(sql, tuple(params)))

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        cursor = await self._conn.execute(sql, tuple(params))
        return cursor.rowcount  # no close(): that would be one more thread hop

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        await self._conn.executemany(sql, [tuple(r) for r in rows])


class SingleStatement(WriterConnection):
    """One write statement outside BEGIN/COMMIT: SQLite makes it atomic by itself.

    Saves two of three thread hops on the hot path of every run (insert,
    claim, finish). With one writer there is no lock upgrade to race for, the
    reason ``BEGIN IMMEDIATE`` exists; a second statement here is a bug.
    """

    def __init__(self, conn: aiosqlite.Connection, disk: DiskMonitor) -> None:
        super().__init__(conn)
        self._disk = disk
        self._used = False

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        self._claim()
        params = tuple(params)
        try:
            return await super().execute(sql, params)
        except sqlite3.Error as exc:
            if not disk_full(exc, self._disk):
                raise
            self._disk.noticed_full()  # gives the reserve up: the statement fits now
        try:
            return await super().execute(sql, params)  # it rolled back whole: try once more
        except sqlite3.Error as exc:
            if disk_full(exc, self._disk):
                raise self._disk.error() from exc
            raise

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        self._claim()
        try:
            await super().executemany(sql, rows)
        except sqlite3.Error as exc:
            if disk_full(exc, self._disk):
                self._disk.noticed_full()
                raise self._disk.error() from exc
            raise

    def _claim(self) -> None:
        if self._used:
            raise RuntimeError("single(): use write() for more than one statement")
        self._used = True


class ReaderConnection(Connection):
    """Reads run right on the event loop, read-only.

    In WAL mode a read never waits for the writer, and the indexed lookups
    orch makes take microseconds: measured, a thread hop costs ten times the
    read itself, so the reader skips it. The connection is opened read-only,
    so a write on a read path fails instead of becoming a second writer.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return self._conn.execute(sql, tuple(params)).fetchall()

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        raise sqlite3.OperationalError("the reader connection is read-only")


class Database:
    def __init__(self, path: Path, disk: DiskMonitor | None = None) -> None:
        self.path = path
        self.disk = disk or DiskMonitor(path.parent)
        self._writer: aiosqlite.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Open and migrate; on failure nothing stays open (the writer's thread would keep
        the process alive)."""
        _private(self.path)
        self._writer = await _connect(str(self.path))
        try:
            await migrate(self._writer)
            reader = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
        except BaseException:
            await self.close()
            raise
        reader.row_factory = sqlite3.Row
        reader.execute("PRAGMA busy_timeout=5000")
        self._reader = reader

    async def close(self) -> None:
        """Close both connections; the writer's thread must not outlive the daemon."""
        reader, writer = self._reader, self._writer
        self._reader = self._writer = None
        if reader is not None:
            reader.close()
        if writer is not None:
            try:
                await writer.close()  # stops its thread even when the close itself fails
            except sqlite3.Error as exc:  # e.g. the last checkpoint on a full disk
                log.warning("closing the database: %s", exc)

    @property
    def reader(self) -> Connection:
        assert self._reader is not None, "database is not open"
        return ReaderConnection(self._reader)

    @asynccontextmanager
    async def single(self) -> AsyncIterator[Connection]:
        """The writer for exactly one statement, in autocommit."""
        assert self._writer is not None, "database is not open"
        async with self._lock:
            yield SingleStatement(self._writer, self.disk)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Connection]:
        """One write transaction: ``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK``).

        Whatever fails, the connection leaves the transaction (a failed ``COMMIT`` left
        open would make every later ``BEGIN`` fail); a full disk raises ``DiskFull``.
        """
        writer = self._writer
        assert writer is not None, "database is not open"
        async with self._lock:
            try:
                await writer.execute("BEGIN IMMEDIATE")
                yield WriterConnection(writer)
                await self._commit(writer)
            except BaseException as exc:
                if writer.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        await writer.rollback()
                if isinstance(exc, sqlite3.Error) and disk_full(exc, self.disk):
                    self.disk.noticed_full()
                    raise self.disk.error() from exc
                raise

    async def _commit(self, writer: aiosqlite.Connection) -> None:
        """Commit; on a full disk, once more after the reserve is given up."""
        try:
            await writer.commit()
        except sqlite3.Error as exc:
            if not (disk_full(exc, self.disk) and writer.in_transaction):
                raise
            self.disk.noticed_full()
            await writer.commit()


def disk_full(exc: sqlite3.Error, disk: DiskMonitor) -> bool:
    """SQLite's "disk is full", or an I/O error while the disk is full (the WAL index
    cannot grow either)."""
    if is_disk_full(exc):
        return True
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code == _SQLITE_IOERR and disk.sample().free_bytes < FULL_BYTES


class _WriterThreadConnection(sqlite3.Connection):
    """Created on aiosqlite's thread (it calls ``sqlite3.connect`` there), so this is
    the one hook that runs on the writer thread before any statement."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        give_way_to_the_loop()
        super().__init__(*args, **kwargs)


async def _connect(target: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(target, isolation_level=None, factory=_WriterThreadConnection)
    conn.row_factory = aiosqlite.Row
    try:
        for pragma in _PRAGMAS:
            await conn.execute(pragma)
    except BaseException:
        await conn.close()
        raise
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


def _private(path: Path) -> None:
    """The database holds secret values: readable by the daemon's user only. Made 0600
    before SQLite opens it, which then gives its -wal and -shm files the same mode."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(file, 0o600)
