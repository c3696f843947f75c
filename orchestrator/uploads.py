"""Upload slots: the local stand-in for the cloud's presigned URLs.

A slot is created by an authenticated call and names a single-use, expiring
token. The body PUT to it is streamed to disk under the cap; the caller then
consumes the file (a push ingests it, a run adopts it as its input).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestrator.config import Settings
from orchestrator.errors import Conflict, NotFound, Unauthorized
from orchestrator.ids import new_id, new_token
from orchestrator.models import now
from orchestrator.registry.lookup import require_app
from orchestrator.store import Store, Upload
from orchestrator.store.blobs import stream_to_file

MIB = 1024 * 1024


class UploadService:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.settings = store, settings

    async def create(self, app_id: str, kind: str) -> Upload:
        await require_app(self.store.read, app_id)
        upload_id = new_id("upload")
        expires = datetime.now(UTC) + timedelta(seconds=self.settings.upload_url_ttl_seconds)
        up = Upload(
            id=upload_id,
            token=new_token(),
            kind=kind,
            app_id=app_id,
            path=str(self.settings.home.uploads / upload_id),
            expires_at=expires.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            created_at=now(),
        )
        async with self.store.write() as w:
            await w.uploads.insert(up)
        return up

    async def receive(self, token: str, body: AsyncIterator[bytes]) -> Upload:
        up = await self.store.read.uploads.by_token(token)
        if up is None:
            raise NotFound("unknown upload URL")
        if up.expires_at < now():
            raise Unauthorized("this upload URL has expired; ask for a new one")
        if up.received_at is not None:
            raise Conflict("this upload URL has already been used; ask for a new one")
        limit = self._limit(up.kind)
        part = Path(up.path + ".part")
        size = await stream_to_file(body, part, limit, what=f"{up.kind} upload")
        async with self.store.write() as w:
            if not await w.uploads.mark_received(up.id, size):
                part.unlink(missing_ok=True)
                raise Conflict("this upload URL has already been used; ask for a new one")
        part.rename(up.path)
        up.size = size
        return up

    async def take_input(self, app_id: str, upload_id: str) -> Upload:
        """Consume a received input upload; its file now belongs to the caller."""
        async with self.store.write() as w:
            up = await w.uploads.get(upload_id)
            if up is None or up.app_id != app_id or up.kind != "input":
                raise NotFound(f"upload {upload_id!r} not found in app {app_id!r}")
            if up.received_at is None:
                raise Conflict(f"upload {upload_id!r} has not received any data yet")
            await w.uploads.delete(up.id)
        return up

    async def take_binary(self, app_id: str) -> Upload:
        """Consume the newest package uploaded for the app (the SDK's push step 3)."""
        async with self.store.write() as w:
            await require_app(w, app_id)
            up = await w.uploads.latest_received(app_id, "binary")
            if up is None:
                raise Conflict(
                    f"no package was uploaded for app {app_id!r}: GET .../binary for an "
                    "upload URL and PUT the tar.gz there first"
                )
            await w.uploads.delete(up.id)
        return up

    async def purge_expired(self) -> int:
        async with self.store.write() as w:
            stale = await w.uploads.expired(now())
            for up in stale:
                await w.uploads.delete(up.id)
        for up in stale:
            Path(up.path).unlink(missing_ok=True)
        return len(stale)

    def _limit(self, kind: str) -> int:
        mb = self.settings.max_package_mb if kind == "binary" else self.settings.max_upload_mb
        return mb * MIB
