"""Nothing leaks: what a killed daemon left is removed at start, what expires goes on time,
and the disk is watched.

A daemon killed mid-way (``kill -9``, a power cut) cannot clean up after
itself. Everything it may leave has one known place, and start-up, when
nothing can be in progress, sweeps each:

- ``tmp/<kind>/``: packages being unpacked, inbox copies, inputs being kept
  (``home.SCRATCH``), emptied whole;
- ``uploads/``: half-received bodies and files whose slot a consumer had
  already taken (``UploadService.sweep``);
- ``executables/`` and ``blobs/``: a package unpacked or stored just before
  the write that records it, so no row names it; and the shard folders of
  ``blobs/`` left empty (by an orch that did not remove a shard with its last blob).

While the daemon runs, expired upload slots are purged with their files every
``PURGE_SECONDS``, and the disk is sampled every second (``DiskMonitor.tick``):
that is what notices space returning and makes the reserve again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path

import anyio

from orchestrator.disk import DiskMonitor
from orchestrator.home import Home
from orchestrator.packaging.unpack import remove_tree
from orchestrator.store import Store
from orchestrator.store.blobs import drop_empty_shard
from orchestrator.uploads import UploadService

log = logging.getLogger("orch.housekeeping")

PURGE_SECONDS = 60.0
TICK_SECONDS = 1.0


class Housekeeping:
    def __init__(self, home: Home, store: Store, uploads: UploadService, disk: DiskMonitor) -> None:
        self.home, self.store, self.uploads, self.disk = home, store, uploads, disk
        ttl = uploads.settings.upload_url_ttl_seconds
        self.purge_every = max(TICK_SECONDS, min(PURGE_SECONDS, ttl))
        """Expired uploads go within a minute, or within their TTL when that is shorter."""
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Sweep what a previous daemon left, then keep watching."""
        removed = {
            "temporary": await anyio.to_thread.run_sync(empty_scratch, self.home),
            "upload": await self.uploads.sweep(),
            "unrecorded package": await self._sweep_unrecorded(),
            "expired upload": await self.uploads.purge_expired(),
        }
        found = ", ".join(f"{n} {what} file(s)" for what, n in removed.items() if n)
        if found:
            log.warning("removed what an earlier daemon left: %s", found)
        self._task = asyncio.create_task(self._loop(), name="housekeeping")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        purged_at = time.monotonic()
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), TICK_SECONDS)
            try:
                await self.disk.tick()
                if time.monotonic() - purged_at >= self.purge_every:
                    purged_at = time.monotonic()
                    await self.uploads.purge_expired()
            except Exception:  # a failed chore is retried next time; the loop must live
                log.exception("housekeeping failed")

    async def _sweep_unrecorded(self) -> int:
        """Unpacked packages and blobs no row names (the daemon died before the write)."""
        packages = await self.store.read.executables.ids()
        blobs = packages | await self.store.read.inputs.all_shas()
        return await anyio.to_thread.run_sync(_sweep_files, self.home, packages, blobs)


def empty_scratch(home: Home) -> int:
    """Empty every ``tmp/<kind>/``."""
    removed = 0
    for folder in _entries(home.tmp):
        for entry in _entries(folder):
            _remove(entry)
            removed += 1
    return removed


def _sweep_files(home: Home, packages: set[str], blobs: set[str]) -> int:
    removed = 0
    for entry in _entries(home.executables):
        if entry.name not in packages:  # dot folders: unpacking work of an older orch
            _remove(entry)
            removed += 1
    for folder in _entries(home.blobs):
        for entry in _entries(folder):
            if entry.name not in blobs:
                _remove(entry)
                removed += 1
        drop_empty_shard(folder)  # also the empty ones an older orch left behind
    return removed


def _entries(folder: Path) -> list[Path]:
    if not folder.is_dir() or folder.is_symlink():
        return []
    return [folder / name for name in sorted(os.listdir(folder))]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        remove_tree(path)
    else:
        path.unlink(missing_ok=True)
