"""Packages and inputs go to the cluster content-addressed, each distinct content once.

The daemon listens on 127.0.0.1 only, so workers cannot fetch from it: the
daemon scatters the bytes into the cluster under ``orch-blob-<sha256>`` and a
worker that lacks them in its cache fetches them by that key (``runner.py``).
The same content needed by many runs (one package, an experiment's inputs on
several targets) is scattered once and held while any run needs it, plus a
short linger so the next run of a package finds it still there.

A package's sha256 is its executable id; a kept input's is its blob name; any
other input file is hashed here, and a folder input is archived first.

Scattered bytes need a worker to hold them: while the cluster has none (its last worker
was lost, none joined yet), a scatter waits for one, as runs wait for a slot, instead of
failing after Dask's few seconds (``TimeoutError('No valid workers found')``), which
would fail the retry of a run whose worker was lost, and every run staged with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed import Client, Future

from orchestrator.runs.backends.dask.protocol import Blob

log = logging.getLogger("orch.dask.shipping")

LINGER_SECONDS = 120.0
INLINE_BYTES = 64 * 1024


@dataclass
class _Held:
    blob: Blob
    ready: asyncio.Task[Future]
    """The scatter: a task of its own, so a caller canceled meanwhile does not cancel it."""
    refs: int = 0
    expiry: asyncio.TimerHandle | None = field(default=None, repr=False)


class Shipper:
    def __init__(self, client: Client, linger_seconds: float = LINGER_SECONDS) -> None:
        self.client, self.linger = client, linger_seconds
        self._held: dict[str, _Held] = {}

    async def ship_file(self, path: Path, sha256: str | None = None) -> Blob:
        """A package; scattered once, whatever the runs that need it."""
        if sha256 is None:
            sha256 = await asyncio.to_thread(_hash_file, path)
        return await self._hold(sha256, False, path.read_bytes)

    async def ship_input(self, path: Path, sha256: str | None = None) -> Blob:
        """A run's input: inside the task when small (one run's content rarely repeats,
        and a scatter plus a fetch cost more round trips than the bytes), else scattered
        once by hash. A folder goes as a tar of it (names sorted: same folder, same hash)."""
        folder = path.is_dir()
        if folder or path.stat().st_size <= INLINE_BYTES:
            # a small file costs less to read here than a hop to a thread
            data = await asyncio.to_thread(archive, path) if folder else path.read_bytes()
            if len(data) <= INLINE_BYTES:
                return Blob(hashlib.sha256(data).hexdigest(), len(data), folder, inline=data)
            return await self._hold(hashlib.sha256(data).hexdigest(), folder, lambda: data)
        if sha256 is None:
            sha256 = await asyncio.to_thread(_hash_file, path)
        return await self._hold(sha256, False, path.read_bytes)

    async def refresh(self, blob: Blob, read: Callable[[], bytes]) -> Future:
        """The blob's handle on the cluster, shipped again if its only copy was lost with a
        worker (a run started again after a lost worker needs it back). Holds no reference:
        the run's published record keeps it alive."""
        held = await self._current(blob.sha256, blob.folder, read)
        who_has = await self.client.who_has([held.ready.result()])
        if not who_has.get(blob.key):  # lost, and the daemon was not told yet
            held = await self._current(blob.sha256, blob.folder, read, lost=True)
        if held.refs <= 0:
            self._expire_later(held)
        return held.ready.result()

    def futures(self, blobs: list[Blob]) -> list[Future]:
        """The cluster's handles of held blobs (published with a run to outlive the daemon)."""
        held = [self._held.get(b.sha256) for b in blobs]
        return [h.ready.result() for h in held if h is not None and h.ready.done()]

    def release(self, blobs: list[Blob]) -> None:
        """A run no longer needs these; each goes from the cluster once unused a while."""
        for blob in blobs:
            held = self._held.get(blob.sha256)
            if held is not None:
                held.refs -= 1
                if held.refs <= 0:
                    self._expire_later(held)

    def close(self) -> None:
        for sha256 in list(self._held):
            self._drop(sha256)

    def abandon(self) -> None:
        """Its client lost the scheduler, and every blob with it: forget them without a
        word to the cluster (a closed client can say nothing)."""
        for held in self._held.values():
            if held.expiry is not None:
                held.expiry.cancel()
        self._held.clear()

    async def _hold(self, sha256: str, folder: bool, read: Callable[[], bytes]) -> Blob:
        held = await self._current(sha256, folder, read)
        held.refs += 1
        if held.expiry is not None:
            held.expiry.cancel()
            held.expiry = None
        return held.blob

    async def _current(
        self, sha256: str, folder: bool, read: Callable[[], bytes], lost: bool = False
    ) -> _Held:
        """The entry of ``sha256``, scattered (again, if its copy was lost) and ready."""
        held = self._held.get(sha256)
        if held is None or lost or not _usable(held):
            refs = held.refs if held else 0
            if held is not None:
                _release(held)
            scatter = asyncio.create_task(self._scatter(Blob(sha256, 0, folder), read))
            self._held[sha256] = held = _Held(Blob(sha256, 0, folder), scatter, refs)
            scatter.add_done_callback(lambda _: self._forget_failed(held))
        await asyncio.shield(held.ready)
        return held

    async def _scatter(self, blob: Blob, read: Callable[[], bytes]) -> Future:
        data = await asyncio.to_thread(read)
        if (held := self._held.get(blob.sha256)) is not None:
            held.blob = Blob(blob.sha256, len(data), blob.folder)
        waited = False
        while True:
            try:  # the scheduler waits a few seconds for a worker, then gives up
                scattered = await self.client.scatter({blob.key: data}, hash=False)
            except TimeoutError:
                if await self._workers():
                    raise  # not for want of a worker
                if not waited:
                    log.warning("no worker in the Dask cluster to ship run files to: waiting")
                    waited = True
                continue
            if waited:
                log.warning("a worker joined the Dask cluster: run files shipped")
            return scattered[blob.key]

    async def _workers(self) -> int:
        """The workers that can take scattered data now (running ones), as the scheduler
        counts them. A client that lost its scheduler raises instead (its caller waits for
        the link to come back)."""
        if self.client.status != "running":
            raise OSError(f"the Dask client is {self.client.status}: no scheduler to ask")
        scheduler: Any = self.client.scheduler
        return len(await scheduler.ncores_running())

    def _forget_failed(self, held: _Held) -> None:
        failed = held.ready.cancelled() or held.ready.exception() is not None
        if failed and self._held.get(held.blob.sha256) is held:
            del self._held[held.blob.sha256]

    def _expire_later(self, held: _Held) -> None:
        if held.expiry is None:
            loop = asyncio.get_running_loop()
            held.expiry = loop.call_later(self.linger, self._drop, held.blob.sha256)

    def _drop(self, sha256: str) -> None:
        held = self._held.pop(sha256, None)
        if held is not None:
            if held.expiry is not None:
                held.expiry.cancel()
            _release(held)


def _release(held: _Held) -> None:
    if held.ready.done() and not held.ready.cancelled() and held.ready.exception() is None:
        held.ready.result().release()


def _usable(held: _Held) -> bool:
    if not held.ready.done():
        return True  # being scattered
    if held.ready.cancelled() or held.ready.exception() is not None:
        return False
    status: Any = held.ready.result().status
    return bool(status == "finished")


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def archive(folder: Path) -> bytes:
    """A reproducible tar of ``folder`` (sorted names, no times or owners)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for dirpath, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                path = Path(dirpath, name)
                info = tar.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if info.isfile():
                    with path.open("rb") as fh:
                        tar.addfile(info, fh)
                else:
                    tar.addfile(info)
    return buffer.getvalue()
