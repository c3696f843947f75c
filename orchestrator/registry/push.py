"""Ingesting a package: the one path shared by the CLI, the SDK's upload URL and the inbox.

Validate and unpack first (a hostile archive never reaches the store), then
store the bytes by hash, record the executable and move devint, all before
anything can run against it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from orchestrator.config import Settings
from orchestrator.errors import NotFound, TooLarge
from orchestrator.models import EnvStatus, Executable, PointerMove
from orchestrator.packaging.unpack import inspect_and_unpack
from orchestrator.registry.gc import collect_garbage
from orchestrator.registry.lookup import require_app, require_current_executable
from orchestrator.store import Store
from orchestrator.store.blobs import BlobStore, hash_file

OnExecutable = Callable[[Executable], Awaitable[None]]

MIB = 1024 * 1024


class PushService:
    def __init__(
        self, store: Store, settings: Settings, blobs: BlobStore, on_new: OnExecutable
    ) -> None:
        self.store, self.settings, self.blobs = store, settings, blobs
        self.home = settings.home
        self._on_new = on_new

    async def ingest(self, app_id: str, archive: Path, action: str = "push") -> Executable:
        """Make ``archive`` the app's current executable and point devint at it.

        The archive file is consumed (moved into the blob store or deleted).
        """
        try:
            await require_app(self.store.read, app_id)
            exe = await self._unpack(archive)
            await self.blobs.adopt(archive, exe.id)
        finally:
            archive.unlink(missing_ok=True)
        async with self.store.write() as w:
            app = await require_app(w, app_id)
            fresh = await w.executables.insert_if_missing(exe, str(self.blobs.path(exe.id)))
            await w.history.record(PointerMove(app_id, "devint", app.executable_id, exe.id, action))
            app.executable_id = exe.id
            await w.apps.update(app)
            stored = await w.executables.get(exe.id)
        assert stored is not None
        if fresh or stored.env_status == EnvStatus.FAILED:
            # a push of a package whose environment failed (an index that was down) is
            # how a user asks for another try: the same package would otherwise never run
            await self._on_new(stored)
        await collect_garbage(self.store, self.home, self.blobs)
        return stored

    async def _unpack(self, archive: Path) -> Executable:
        limit = self.settings.max_package_mb * MIB
        size = archive.stat().st_size
        if size > limit:
            raise TooLarge(
                f"package is {size / MIB:.1f} MiB; the limit is {self.settings.max_package_mb} MiB"
                " (max_package_mb)"
            )
        sha, size = await anyio.to_thread.run_sync(hash_file, archive)
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

    async def current(self, app_id: str) -> Executable:
        """The app's latest push (what devint runs)."""
        repos = self.store.read
        return await require_current_executable(repos, await require_app(repos, app_id))

    async def executable(self, exe_id: str) -> Executable:
        exe = await self.store.read.executables.get(exe_id)
        if exe is None:
            raise NotFound(f"executable {exe_id} not found")
        return exe
