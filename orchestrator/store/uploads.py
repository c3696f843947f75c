"""Single-use, expiring upload slots (the SDK's presigned URLs, served locally)."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.models import now
from orchestrator.store.db import Connection


@dataclass
class Upload:
    id: str
    token: str
    kind: str  # "binary" | "input"
    app_id: str
    path: str
    expires_at: str
    created_at: str
    size: int | None = None
    sha256: str | None = None
    received_at: str | None = None


class UploadRepo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def insert(self, up: Upload) -> None:
        await self.conn.execute(
            "INSERT INTO uploads (id, token, kind, app_id, path, expires_at, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (up.id, up.token, up.kind, up.app_id, up.path, up.expires_at, up.created_at),
        )

    async def by_token(self, token: str) -> Upload | None:
        row = await self.conn.one("SELECT * FROM uploads WHERE token = ?", (token,))
        return None if row is None else Upload(**dict(row))

    async def get(self, upload_id: str) -> Upload | None:
        row = await self.conn.one("SELECT * FROM uploads WHERE id = ?", (upload_id,))
        return None if row is None else Upload(**dict(row))

    async def latest_received(self, app_id: str, kind: str) -> Upload | None:
        row = await self.conn.one(
            "SELECT * FROM uploads WHERE app_id = ? AND kind = ? AND received_at IS NOT NULL"
            " ORDER BY received_at DESC LIMIT 1",
            (app_id, kind),
        )
        return None if row is None else Upload(**dict(row))

    async def mark_received(self, upload_id: str, size: int) -> bool:
        """Claim the slot; false if it was already used (the URL is single-use)."""
        changed = await self.conn.execute(
            "UPDATE uploads SET received_at = ?, size = ? WHERE id = ? AND received_at IS NULL",
            (now(), size, upload_id),
        )
        return changed == 1

    async def delete(self, upload_id: str) -> None:
        await self.conn.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))

    async def expired(self, at: str) -> list[Upload]:
        rows = await self.conn.all("SELECT * FROM uploads WHERE expires_at < ?", (at,))
        return [Upload(**dict(r)) for r in rows]

    async def all(self) -> list[Upload]:
        return [Upload(**dict(r)) for r in await self.conn.all("SELECT * FROM uploads")]
