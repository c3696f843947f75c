"""SQLite access: one writer connection behind a lock, one read-only reader.

datasette's rule: every write goes through one connection, inside ``BEGIN
IMMEDIATE``, so writers never race for the lock and a failed request rolls back
whole. Both connections run their statements right on the event loop: in WAL
mode with ``synchronous=NORMAL`` a commit appends to the WAL without an fsync,
so a run's insert, claim or finish takes ~10 µs of CPU, where handing it to a
writer thread (aiosqlite's design) cost ~125 µs of hand-off per statement and
two context switches (measured on the benchmark VM). What can take long moves
off the loop instead: the fsyncs, which SQLite does when it checkpoints the WAL
into the database (``Checkpointer``, its own thread and connection), and bulk
``executemany`` calls (a worker thread, under the same lock).

A full disk is no crash: SQLite's "database or disk is full" becomes
``DiskFull`` (the one error callers recognise), after the disk monitor has
given up its reserve; a single statement is then tried once more, so the
writes that end runs still land on a disk that just filled up. A write that only
deletes may also spend the slice the disk keeps for deletes, before it commits (a
``COMMIT`` that meets a full disk rolls the whole transaction back): deleting runs is
the way out of a full disk, and a disk filled again after the reserve went left SQLite
no room for the WAL frames of a delete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from orchestrator.disk import FULL_BYTES, DiskMonitor, is_disk_full
from orchestrator.store.drift import SchemaDrift, repair
from orchestrator.store.migrations import MIGRATIONS, statements
from orchestrator.threads import give_way_to_the_loop, show_name

Row = sqlite3.Row
log = logging.getLogger("orch.store")

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # WAL + NORMAL: durable across app crashes, fsync at checkpoint
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
    "PRAGMA wal_autocheckpoint=0",  # the Checkpointer's job: no fsync inside a commit
    # the WAL file shrinks when a write starts it over after a checkpoint: the Checkpointer
    # goes by its size, and a file that stayed at its high mark made every second with a
    # write a checkpoint (two fsyncs a second at one run a second, found by a soak)
    "PRAGMA journal_size_limit=0",
)
_SQLITE_IOERR = 10
BULK_ROWS = 64
"""``executemany`` with more rows than this runs on a worker thread, not on the loop."""
CHECKPOINT_BYTES = 4 * 1024 * 1024
"""WAL size that makes the Checkpointer copy it back (SQLite's own default: 1000 pages)."""
CHECKPOINT_SECONDS = 1.0


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
    """The single writer; its statements run on the event loop (see the module)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._deletes = self._adds = False

    @property
    def frees(self) -> bool:
        """Whether this write deleted rows and did nothing else but read: it frees space,
        and may spend the slice the disk keeps for deletes."""
        return self._deletes and not self._adds

    def _note(self, sql: str) -> None:
        if self._adds:
            return
        verb = sql.lstrip()[:6].upper()
        if verb == "DELETE":
            self._deletes = True
        elif verb != "SELECT":
            self._adds = True

    async def all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        self._note(sql)  # DELETE ... RETURNING comes here
        return self._conn.execute(sql, tuple(params)).fetchall()

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        self._note(sql)
        return self._conn.execute(sql, tuple(params)).rowcount

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        self._note(sql)
        batch = [tuple(r) for r in rows]
        if len(batch) <= BULK_ROWS:
            self._conn.executemany(sql, batch)
        else:  # the caller holds the writer's lock: nothing else uses it meanwhile
            await anyio.to_thread.run_sync(self._conn.executemany, sql, batch)


class SingleStatement(WriterConnection):
    """One write statement outside BEGIN/COMMIT: SQLite makes it atomic by itself.

    The hot path of every run (insert, claim, finish) saves the ``BEGIN`` and
    ``COMMIT`` statements. With one writer there is no lock upgrade to race for, the
    reason ``BEGIN IMMEDIATE`` exists; a second statement here is a bug.
    """

    def __init__(self, conn: sqlite3.Connection, disk: DiskMonitor) -> None:
        super().__init__(conn)
        self._disk = disk
        self._used = False

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        self._claim()
        params = tuple(params)
        self._note(sql)
        if self.frees:
            room_to_delete(self._disk)
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
                raise self._disk.error(freeing=self.frees) from exc
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
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._checkpointer: Checkpointer | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Open and migrate; on failure nothing stays open."""
        _private(self.path)
        writer = _connect(self.path)
        try:
            migrate(writer, f"the database {self.path}")
            reader = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
        except BaseException:
            writer.close()
            raise
        reader.row_factory = sqlite3.Row
        reader.execute("PRAGMA busy_timeout=5000")
        self._writer, self._reader = writer, reader
        self._checkpointer = Checkpointer(self.path)

    async def close(self) -> None:
        """Close both connections; the last checkpoint leaves no WAL behind."""
        reader, writer, checkpointer = self._reader, self._writer, self._checkpointer
        self._reader = self._writer = self._checkpointer = None
        if checkpointer is not None:
            checkpointer.close()
        if reader is not None:
            reader.close()
        if writer is not None:
            try:
                writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                writer.close()
            except sqlite3.Error as exc:  # e.g. the last checkpoint on a full disk
                log.warning("closing the database: %s", exc)
                with contextlib.suppress(sqlite3.Error):
                    writer.close()

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
            conn = WriterConnection(writer)
            try:
                writer.execute("BEGIN IMMEDIATE")
                yield conn
                if conn.frees:
                    room_to_delete(self.disk)
                self._commit(writer)
            except BaseException as exc:
                if writer.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        writer.rollback()
                if isinstance(exc, sqlite3.Error) and disk_full(exc, self.disk):
                    self.disk.noticed_full()
                    raise self.disk.error(freeing=conn.frees) from exc
                raise

    def _commit(self, writer: sqlite3.Connection) -> None:
        """Commit; on a full disk, once more after the reserve is given up."""
        try:
            writer.commit()
        except sqlite3.Error as exc:
            if not (disk_full(exc, self.disk) and writer.in_transaction):
                raise
            self.disk.noticed_full()
            writer.commit()


def room_to_delete(disk: DiskMonitor) -> None:
    """Before a write that only deletes lands on a disk with no room: the slice the disk
    keeps for deletes goes (one ``statvfs``: deletes are rare)."""
    if disk.free_bytes() < FULL_BYTES:
        disk.give_slice_to_delete()


def disk_full(exc: sqlite3.Error, disk: DiskMonitor) -> bool:
    """SQLite's "disk is full", or an I/O error while the disk is full (the WAL index
    cannot grow either)."""
    if is_disk_full(exc):
        return True
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code == _SQLITE_IOERR and disk.sample().free_bytes < FULL_BYTES


class Checkpointer:
    """Copies the WAL back into the database from a thread of its own.

    The writer never checkpoints (``wal_autocheckpoint=0``), so no commit on the loop
    waits for the fsyncs a checkpoint makes. Once a second this thread looks at the
    WAL's size and, past ``CHECKPOINT_BYTES``, runs a ``PASSIVE`` checkpoint: it never
    blocks the writer or a reader, and whatever it could not copy (a reader still on
    an old snapshot, a full disk) is copied on a later pass.
    """

    def __init__(self, path: Path) -> None:
        self.path, self.every = path, CHECKPOINT_SECONDS
        self._wal = path.with_name(path.name + "-wal")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="orch-checkpoint", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        give_way_to_the_loop()
        show_name()
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=True)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            while not self._stop.wait(self.every):
                self.checkpoint_if_due(conn)
        finally:
            conn.close()

    def checkpoint_if_due(self, conn: sqlite3.Connection) -> None:
        try:
            if os.stat(self._wal).st_size < CHECKPOINT_BYTES:
                return
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except FileNotFoundError:
            return
        except sqlite3.Error as exc:  # a full disk, mostly: the next pass tries again
            log.warning("checkpoint of %s deferred: %s", self.path.name, exc)


def _connect(path: Path) -> sqlite3.Connection:
    """The writer. ``check_same_thread=False``: bulk statements run on a worker thread,
    always under the writer's lock (see ``WriterConnection.executemany``)."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    try:
        for pragma in _PRAGMAS:
            conn.execute(pragma)
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(conn: sqlite3.Connection, name: str = "the database") -> int:
    """Apply the numbered migrations the file has not seen; returns the new version.

    ``PRAGMA user_version`` records how far a database file has come, so an
    old file from an earlier orch is brought forward at start, in order. ``name``
    says which file in an error.
    """
    row = conn.execute("PRAGMA user_version").fetchone()
    version = int(row[0]) if row else 0
    if version > len(MIGRATIONS):
        raise SchemaDrift(
            f"{name} has schema version {version}, newer than this orch's "
            f"({len(MIGRATIONS)}): a newer orch wrote it; use that one (or a newer) with it"
        )
    if version == len(MIGRATIONS):
        return version
    # All of it or nothing: a migration that fails (or a crash) leaves the file as it was,
    # at a version the orch that wrote it can still open. Foreign keys are off while
    # tables are rebuilt (a dropped table must not cascade), and checked before the end.
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            repaired = repair(conn, version, name) if version else []
            for script in MIGRATIONS[version:]:
                for statement in statements(script):
                    conn.execute(statement)
            if conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
                raise SchemaDrift(f"{name}: its rows break its foreign keys once migrated")
            conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
    finally:
        conn.execute("PRAGMA foreign_keys=ON")
    if repaired:
        log.warning("rebuilt table(s) %s made by an early build of schema %d", repaired, version)
    return len(MIGRATIONS)


def _private(path: Path) -> None:
    """The database holds secret values: readable by the daemon's user only. Made 0600
    before SQLite opens it, which then gives its -wal and -shm files the same mode."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(file, 0o600)
