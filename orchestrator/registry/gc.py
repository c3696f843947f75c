"""Garbage collection of packages that nothing points at any more, and never one a push
is still ingesting.

A push finds its package unpacked already (the same bytes pushed before) or unpacks it,
stores its bytes, and only then records the executable and moves devint. A collection
in between (another push's, or an app delete's) saw that package unreferenced and
removed its files, and the push then recorded an executable whose folder was gone:
every run of devint failed with ``FileNotFoundError``, after restarts too (two pushes
to one app released together did it in 4 of 4 tries). So a push registers its
package's hash before it touches the files (``ingesting``) and a collection leaves
registered packages alone; both take one lock, so a push never registers while a
collection is removing that very package.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from orchestrator import trees
from orchestrator.home import Home
from orchestrator.store import Store
from orchestrator.store.blobs import BlobStore


class Collector:
    def __init__(self, store: Store, home: Home, blobs: BlobStore) -> None:
        self.store, self.home, self.blobs = store, home, blobs
        self._lock = asyncio.Lock()
        self._ingesting: Counter[str] = Counter()

    @asynccontextmanager
    async def ingesting(self, exe_id: str) -> AsyncIterator[None]:
        """Around a push's work on package ``exe_id``, from before its files are looked at
        until its executable is recorded (or the push failed)."""
        async with self._lock:  # not while a collection removes this package's files
            self._ingesting[exe_id] += 1
        try:
            yield
        finally:
            self._ingesting[exe_id] -= 1
            if not self._ingesting[exe_id]:
                del self._ingesting[exe_id]

    async def collect(self) -> list[str]:
        """Delete executables no app, version or unfinished run references; their ids.

        A finished run keeps the id of the executable it used as a record, not as
        a reference: its outputs stay, the package may go.
        """
        async with self._lock:
            async with self.store.write() as w:
                unreferenced = await w.executables.unreferenced()
                doomed = [exe_id for exe_id, _ in unreferenced if exe_id not in self._ingesting]
                await w.executables.delete(doomed)
            for exe_id in doomed:
                self._remove(exe_id)
        return doomed

    async def abandon(self, exe_id: str) -> None:
        """The files of a push that was never recorded (its app was deleted meanwhile):
        removed unless an executable row or another push still has them. Nothing else
        would: a collection goes by rows, and only the next start's sweep by folders."""
        async with self._lock:
            if exe_id in self._ingesting:
                return
            if await self.store.read.executables.get(exe_id) is not None:
                return
            self._remove(exe_id)

    def _remove(self, exe_id: str) -> None:
        self.blobs.delete(exe_id)
        trees.remove(self.home.executables / exe_id)  # read-only folders: made writable
