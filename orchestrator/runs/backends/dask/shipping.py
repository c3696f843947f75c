"""Packages and inputs go to the cluster content-addressed, each distinct content once.

The daemon listens on 127.0.0.1 only, so workers cannot fetch from it: the
daemon scatters the bytes into the cluster under ``orch-blob-<sha256>`` and a
worker that lacks them in its cache fetches them by that key (``runner.py``).
The same content needed by many runs (one package, an experiment's inputs on
several targets) is scattered once and held while any run needs it, plus a
short linger so the next run of a package finds it still there.

A package's sha256 is its executable id; a kept input's is its blob name; any
other input file is hashed here, and a folder input is archived first.
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


@dataclass
class _Held:
    blob: Blob
    ready: asyncio.Future[Future]
    refs: int = 1
    expiry: asyncio.TimerHandle | None = field(default=None, repr=False)


class Shipper:
    def __init__(self, client: Client, linger_seconds: float = LINGER_SECONDS) -> None:
        self.client, self.linger = client, linger_seconds
        self._held: dict[str, _Held] = {}

    async def ship_file(self, path: Path, sha256: str | None = None) -> Blob:
        """A file (a package, a single-file input); hashed unless its name is its hash."""
        if sha256 is None:
            sha256 = await asyncio.to_thread(_hash_file, path)
        return await self._hold(sha256, folder=False, read=path.read_bytes)

    async def ship_folder(self, path: Path) -> Blob:
        """A folder input, as a tar archive of its files (names sorted: same folder, same hash)."""
        data = await asyncio.to_thread(_archive, path)
        sha256 = hashlib.sha256(data).hexdigest()
        return await self._hold(sha256, folder=True, read=lambda: data)

    def futures(self, blobs: list[Blob]) -> list[Future]:
        """The cluster's handles of held blobs (published with a run to outlive the daemon)."""
        return [
            self._held[b.sha256].ready.result()
            for b in blobs
            if b.sha256 in self._held and self._held[b.sha256].ready.done()
        ]

    def release(self, blobs: list[Blob]) -> None:
        """A run no longer needs these; each goes from the cluster once unused a while."""
        loop = asyncio.get_running_loop()
        for blob in blobs:
            held = self._held.get(blob.sha256)
            if held is None:
                continue
            held.refs -= 1
            if held.refs <= 0 and held.expiry is None:
                held.expiry = loop.call_later(self.linger, self._drop, blob.sha256)

    def close(self) -> None:
        for sha256 in list(self._held):
            self._drop(sha256)

    async def _hold(self, sha256: str, folder: bool, read: Callable[[], bytes]) -> Blob:
        held = self._held.get(sha256)
        if held is not None and not _usable(held):
            self._drop(sha256)  # its only copy was on a worker that is gone: ship again
            held = None
        if held is not None:
            held.refs += 1
            if held.expiry is not None:
                held.expiry.cancel()
                held.expiry = None
            try:
                await asyncio.shield(held.ready)
            except Exception:
                self.release([held.blob])
                raise
            return held.blob
        return await self._scatter(sha256, folder, read)

    async def _scatter(self, sha256: str, folder: bool, read: Callable[[], bytes]) -> Blob:
        ready: asyncio.Future[Future] = asyncio.get_running_loop().create_future()
        held = _Held(Blob(sha256, 0, folder), ready)
        self._held[sha256] = held
        try:
            data = await asyncio.to_thread(read)
            held.blob = Blob(sha256, len(data), folder)
            scattered = await self.client.scatter({held.blob.key: data}, hash=False)
            ready.set_result(scattered[held.blob.key])
        except BaseException as exc:
            self._held.pop(sha256, None)
            ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
            ready.exception()  # retrieved here; waiters re-raise it
            raise
        return held.blob

    def _drop(self, sha256: str) -> None:
        held = self._held.pop(sha256, None)
        if held is None:
            return
        if held.expiry is not None:
            held.expiry.cancel()
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


def _archive(folder: Path) -> bytes:
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
