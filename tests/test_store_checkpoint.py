"""The WAL is copied back by the checkpointer thread, never inside a commit on the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from orchestrator.store import db
from orchestrator.store.db import Database


def _fill(conn: sqlite3.Connection, rows: int) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS filler (id INTEGER PRIMARY KEY, body TEXT)")
    for i in range(rows):
        conn.execute("INSERT INTO filler (body) VALUES (?)", ("x" * 2000 + str(i),))


async def test_commits_on_the_loop_never_checkpoint(tmp_path: Path) -> None:
    database = Database(tmp_path / "orch.db")
    await database.open()
    try:
        assert database._checkpointer is not None
        database._checkpointer.close()  # only the writer now: nothing may copy the WAL back
        size = (tmp_path / "orch.db").stat().st_size
        async with database.write() as w:
            await w.execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, body TEXT)")
        for i in range(3000):  # ~6 MB: past SQLite's own autocheckpoint of 1000 pages
            async with database.single() as w:
                await w.execute("INSERT INTO filler (body) VALUES (?)", ("x" * 2000 + str(i),))
        assert (tmp_path / "orch.db").stat().st_size == size
        assert (tmp_path / "orch.db-wal").stat().st_size > 4_000_000
    finally:
        await database.close()
    # closing checkpoints: the rows are in the database file and the WAL is empty
    assert (tmp_path / "orch.db").stat().st_size > 6_000_000
    conn = sqlite3.connect(tmp_path / "orch.db")
    assert conn.execute("SELECT count(*) FROM filler").fetchone()[0] == 3000
    conn.close()


async def test_the_checkpointer_copies_a_grown_wal_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "CHECKPOINT_SECONDS", 0.05)
    monkeypatch.setattr(db, "CHECKPOINT_BYTES", 100_000)
    database = Database(tmp_path / "orch.db")
    await database.open()
    try:
        size = (tmp_path / "orch.db").stat().st_size
        async with database.write() as w:
            await w.execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, body TEXT)")
            await w.executemany(  # a bulk insert: on a worker thread, under the lock
                "INSERT INTO filler (body) VALUES (?)", [("y" * 2000,)] * 500
            )
        deadline = time.monotonic() + 10
        while (tmp_path / "orch.db").stat().st_size <= size + 500_000:
            assert time.monotonic() < deadline, "the WAL was never checkpointed"
            await asyncio.sleep(0.05)
        assert await database.reader.scalar("SELECT count(*) FROM filler") == 500
        # the next write starts the WAL over, and the file with it: the checkpointer goes by
        # its size, and a file left at its high mark had it checkpoint every second
        wal = tmp_path / "orch.db-wal"
        deadline = time.monotonic() + 10
        while True:
            async with database.single() as w:
                await w.execute("INSERT INTO filler (body) VALUES ('z')")
            if wal.stat().st_size < db.CHECKPOINT_BYTES:
                break
            assert time.monotonic() < deadline, f"the WAL stayed at {wal.stat().st_size} bytes"
            await asyncio.sleep(0.05)
    finally:
        await database.close()
