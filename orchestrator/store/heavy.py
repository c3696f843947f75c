"""Long reads on a thread of their own, so the event loop never waits for them.

Reading and converting an experiment's 10,000 runs takes ~100 ms; on the loop
that would stall every HTTP answer and every spawn meanwhile. Here the same
repository code runs on a dedicated thread with its own read-only connection:
the coroutines of ``ReaderConnection`` never suspend, so the thread drives them
to completion directly, without an event loop of its own. Work handed over
may also compute (a summary, a report) before it returns.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from orchestrator.store.db import ReaderConnection
from orchestrator.threads import give_way_to_the_loop

if TYPE_CHECKING:
    from orchestrator.store import Repos

T = TypeVar("T")


class HeavyReads:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="orch-heavy", initializer=give_way_to_the_loop
        )

    async def call(self, work: Callable[[Repos], Coroutine[Any, Any, T]]) -> T:
        """``await work(repos)`` on the heavy thread; returns what it returns."""
        future = self._pool.submit(self._drive, work)
        return await anyio.to_thread.run_sync(future.result, abandon_on_cancel=True)

    def _drive(self, work: Callable[[Repos], Coroutine[Any, Any, T]]) -> T:
        from orchestrator.store import Repos  # the package imports this module

        coroutine = work(Repos(ReaderConnection(self._connection())))
        try:
            coroutine.send(None)
        except StopIteration as done:
            return done.value
        coroutine.close()
        raise RuntimeError("heavy reads must not await anything but the store's reads")

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=5000")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close the thread's connection and the thread (idempotent)."""
        try:
            self._pool.submit(self._close_connection).result()
        except RuntimeError:  # closed already
            return
        self._pool.shutdown(wait=True)

    def _close_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
