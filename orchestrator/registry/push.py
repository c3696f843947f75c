"""Ingesting a package: the one path shared by the CLI, the SDK's upload URL and the inbox.

Validate and unpack first (a hostile archive never reaches the store), then
store the bytes by hash, record the executable and move devint, all before
anything can run against it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio

from orchestrator.config import Settings
from orchestrator.errors import NotFound, OrchError, TooLarge
from orchestrator.models import EnvStatus, Executable, PointerMove
from orchestrator.packaging.unpack import inspect_and_unpack
from orchestrator.registry.gc import Collector
from orchestrator.registry.lookup import require_app, require_current_executable
from orchestrator.store import Store
from orchestrator.store.blobs import BlobStore, hash_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ingested:
    executable: Executable
    unchanged: bool
    """devint ran this package already: nothing moved, no history row."""


OnExecutable = Callable[[Executable], Awaitable[None]]

MIB = 1024 * 1024


class PushService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        blobs: BlobStore,
        gc: Collector,
        on_new: OnExecutable,
    ) -> None:
        self.store, self.settings, self.blobs, self.gc = store, settings, blobs, gc
        self.home = settings.home
        self._on_new = on_new

    async def ingest(self, app_id: str, archive: Path, action: str = "push") -> Executable:
        """Make ``archive`` the app's current executable and point devint at it."""
        return (await self.ingest_moving(app_id, archive, action)).executable

    async def ingest_moving(self, app_id: str, archive: Path, action: str = "push") -> Ingested:
        """Make ``archive`` the app's current executable and point devint at it; whether
        devint ran it already (then no move is recorded: a push of what devint runs, as a
        ``--watch`` started after a push, is no event in the pointer history).

        The archive file is consumed (moved into the blob store or deleted). From the
        moment its hash is known the package is ``ingesting`` (``registry/gc.py``): no
        collection removes its files before the executable is recorded, and a push that
        fails after unpacking (its app deleted meanwhile) leaves none behind.
        """
        try:
            await require_app(self.store.read, app_id)
            sha, size = await self._measure(archive)
            recorded = False
            try:
                async with self.gc.ingesting(sha):
                    exe = await self._unpack(archive, sha, size)
                    await self.blobs.adopt(archive, exe.id)
                    stored, fresh, unchanged = await self._record(app_id, exe, action)
                    recorded = True
            finally:
                if not recorded:
                    await self.gc.abandon(sha)
        finally:
            archive.unlink(missing_ok=True)
        if fresh or stored.env_status == EnvStatus.FAILED or not unchanged:
            # a push of a package whose environment failed (an index that was down) is
            # how a user asks for another try: the same package would otherwise never run;
            # one another app pushed before needs this app's own environment
            await self._on_new(stored)
        await self.gc.collect()
        return Ingested(stored, unchanged)

    async def _record(
        self, app_id: str, exe: Executable, action: str
    ) -> tuple[Executable, bool, bool]:
        """The executable's row (if new) and devint moved to it, in one transaction;
        whether the row is new, and whether devint ran it already (nothing moves then)."""
        async with self.store.write() as w:
            app = await require_app(w, app_id)
            fresh = await w.executables.insert_if_missing(exe, str(self.blobs.path(exe.id)))
            unchanged = app.executable_id == exe.id
            if not unchanged:
                move = PointerMove(app_id, "devint", app.executable_id, exe.id, action)
                await w.history.record(move)
                app.executable_id = exe.id
                await w.apps.update(app)
            stored = await w.executables.get(exe.id)
        assert stored is not None
        return stored, fresh, unchanged

    async def _measure(self, archive: Path) -> tuple[str, int]:
        """The archive's sha256 and size, refused over ``max_package_mb`` before it is read."""
        limit = self.settings.max_package_mb * MIB
        size = archive.stat().st_size
        if size > limit:
            raise TooLarge(
                f"package is {size / MIB:.1f} MiB; the limit is {self.settings.max_package_mb} MiB"
                " (max_package_mb)"
            )
        return await anyio.to_thread.run_sync(hash_file, archive)

    async def _unpack(self, archive: Path, sha: str, size: int) -> Executable:
        limit = self.settings.max_package_mb * MIB
        result = await anyio.to_thread.run_sync(
            lambda: inspect_and_unpack(
                archive,
                self.home.executables / sha,
                max_bytes=limit * 4,
                max_files=self.settings.max_package_files,
                scratch=self.home.scratch("unpack"),
            )
        )
        manifest = result.manifest
        return Executable(
            id=sha, size=size, manifest=manifest.raw, type=manifest.type, runtime=manifest.runtime
        )

    async def restore_missing(self) -> list[str]:
        """Unpack again, from its stored package, every recorded package whose folder is
        gone (removed by hand, or a home restored without it): each of its runs would
        fail to start. Returns their ids."""
        restored = []
        for exe_id in sorted(await self.store.read.executables.ids()):
            blob = self.blobs.path(exe_id)
            if (self.home.executables / exe_id).is_dir() or not blob.is_file():
                continue
            try:
                async with self.gc.ingesting(exe_id):
                    await self._unpack(blob, exe_id, blob.stat().st_size)
            except (OrchError, OSError) as exc:  # its runs keep failing, saying why
                log.warning("package %s could not be unpacked again: %s", exe_id, exc)
                continue
            restored.append(exe_id)
        return restored

    async def current(self, app_id: str) -> Executable:
        """The app's latest push (what devint runs)."""
        repos = self.store.read
        return await require_current_executable(repos, await require_app(repos, app_id))

    async def executable(self, exe_id: str) -> Executable:
        exe = await self.store.read.executables.get(exe_id)
        if exe is None:
            raise NotFound(f"executable {exe_id} not found")
        return exe
