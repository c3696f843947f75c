"""Upload slots: the local stand-in for the cloud's presigned URLs.

A slot is created by an authenticated call and names a single-use, expiring
token. The body PUT to it is streamed to disk under the cap; the caller then
consumes the file (a push ingests it, a run adopts it as its input). A package's
commit consumes it only once the push is done, or refused for the package itself
(``claim_binary``): one met by a full disk (507) or any other failure that is not the
package's fault is kept, and the same commit works again until the slot expires.

Files live in ``uploads/``: ``<id>.part`` while a body arrives, ``<id>`` once
received, until a consumer takes it (its row goes first, then the file is
moved away). Whatever a killed daemon left there, a half body or a taken
file, is removed at start (``sweep``); expired slots go with their files. A body that
announces its size claims that room on the disk while it arrives (``DiskMonitor.claim``),
so concurrent uploads cannot together overfill what each alone fitted.
"""

from __future__ import annotations

import copy
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestrator import trees
from orchestrator.config import Settings
from orchestrator.disk import is_disk_full
from orchestrator.errors import Conflict, NotFound, OrchError, TooLarge, Unauthorized, Unprocessable
from orchestrator.ids import new_id, new_token
from orchestrator.models import now
from orchestrator.registry.lookup import require_app
from orchestrator.store import Store, Upload
from orchestrator.store.blobs import stream_to_file

MIB = 1024 * 1024
COMMITTING = ".commit"
"""``<id>.commit``: a hard link to a package being committed, which the push consumes
(the upload's own file stays until the push is done); a killed daemon's goes at start."""


def package_at_fault(exc: BaseException) -> bool:
    """Whether a commit failed for the package itself (a broken archive or manifest, too
    large): committing it again cannot work, so its upload goes, as it always did."""
    return isinstance(exc, Unprocessable | TooLarge)


def kept_for_retry(up: Upload) -> str:
    """What a failed commit's message adds: the upload is there for a retry."""
    return (
        f". The upload {up.id!r} is kept: the same commit (PUT .../binary with its "
        f"upload_id) works once that is fixed, until the upload expires at {up.expires_at}"
    )


class UploadService:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.settings = store, settings
        self.folder = settings.home.uploads
        self._receiving: set[str] = set()
        """Slots whose body is arriving now: not purged, not received twice at once."""
        self._committing: set[str] = set()
        """Packages being committed now: not committed twice at once."""

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

    async def receive(
        self, token: str, body: AsyncIterator[bytes], announced: int | None = None
    ) -> Upload:
        up = await self.store.read.uploads.by_token(token)
        if up is None:
            raise NotFound("unknown upload URL")
        if up.expires_at < now():
            raise Unauthorized("this upload URL has expired; ask for a new one")
        if up.received_at is not None:
            raise Conflict("this upload URL has already been used; ask for a new one")
        if up.id in self._receiving:
            raise Conflict("this upload URL is already receiving a body; wait for it to end")
        part, final = Path(up.path + ".part"), Path(up.path)
        self._receiving.add(up.id)
        try:
            setting = "max_package_mb" if up.kind == "binary" else "max_upload_mb"
            with self.store.disk.claim(announced or 0, part):  # counted until written
                size = await stream_to_file(
                    body, part, self._limit(up.kind), f"{up.kind} upload ({setting})", announced
                )
            os.replace(part, final)  # in place before the row says so: a kill leaves no half
            async with self.store.write() as w:
                if not await w.uploads.mark_received(up.id, size):
                    raise Conflict("this upload URL has already been used; ask for a new one")
        except BaseException:
            part.unlink(missing_ok=True)
            final.unlink(missing_ok=True)
            raise
        finally:
            self._receiving.discard(up.id)
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

    async def claim_binary(self, app_id: str, upload_id: str | None = None) -> tuple[Upload, Path]:
        """The package of the upload ``upload_id`` (orch's own client names it), else the
        newest one received for the app (the SDK's push step 3 names none, so two SDK
        pushes to one app at once may each commit the other's package); and a link to its
        file for the push to consume. The upload stays until ``committed`` says it went
        (or ``released`` that it is kept): taken at once, it was lost to a commit that met
        a full disk, and the retry of that commit found no upload."""
        up = await self._find_binary(app_id, upload_id)
        if up.id in self._committing:
            raise Conflict(f"upload {up.id!r} is being committed already; wait for that commit")
        link = Path(up.path + COMMITTING)
        link.unlink(missing_ok=True)  # a failed commit's, if its unlink failed
        try:
            os.link(up.path, link)
        except FileNotFoundError:
            async with self.store.write() as w:
                await w.uploads.delete(up.id)
            raise NotFound(f"upload {up.id!r} lost its package; upload it again") from None
        self._committing.add(up.id)
        return up, link

    async def committed(self, up: Upload, link: Path) -> None:
        """The package was pushed, or refused for itself: its upload is consumed."""
        self._committing.discard(up.id)
        async with self.store.write() as w:
            await w.uploads.delete(up.id)
        _remove(Path(up.path))
        link.unlink(missing_ok=True)

    def released(self, up: Upload, link: Path) -> None:
        """The commit failed for no fault of the package: its upload is kept for a retry."""
        self._committing.discard(up.id)
        link.unlink(missing_ok=True)

    def failed_commit(self, up: Upload, exc: BaseException) -> OrchError | None:
        """The answer to a commit that failed with ``exc`` for no fault of the package (its
        upload kept): the same refusal, saying the retry works (a full disk met as an
        ``OSError`` is the 507 the API answers it with); ``None`` for an unexpected error
        (a 500, as before: nothing to add to an internal error)."""
        if is_disk_full(exc) and not isinstance(exc, OrchError):
            self.store.disk.noticed_full()
            exc = self.store.disk.error()
        if not isinstance(exc, OrchError):
            return None
        again = copy.copy(exc)
        again.message = exc.message.rstrip(".") + kept_for_retry(up)
        again.args = (again.message,)
        return again

    async def _find_binary(self, app_id: str, upload_id: str | None) -> Upload:
        async with self.store.write() as w:
            await require_app(w, app_id)
            if upload_id is not None:
                up = await w.uploads.get(upload_id)
                if up is None or up.app_id != app_id or up.kind != "binary":
                    raise NotFound(f"upload {upload_id!r} not found in app {app_id!r}")
                if up.received_at is None:
                    raise Conflict(f"upload {upload_id!r} has not received its package yet")
            else:
                up = await w.uploads.latest_received(app_id, "binary")
            if up is None:
                raise Conflict(
                    f"no package was uploaded for app {app_id!r}: GET .../binary for an "
                    "upload URL and PUT the tar.gz there first"
                )
        return up

    async def purge_expired(self) -> int:
        """Drop expired slots (not one receiving now) with their files, half or whole."""
        async with self.store.write() as w:
            stale = [u for u in await w.uploads.expired(now()) if u.id not in self._receiving]
            for up in stale:
                await w.uploads.delete(up.id)
        for up in stale:
            _remove(Path(up.path))
            _remove(Path(up.path + ".part"))
        return len(stale)

    async def sweep(self) -> int:
        """At start, when no body can be arriving: keep the files of received slots only.

        A ``.part`` is a body a killed daemon was receiving (the client PUTs again); a
        file with no slot, or an unreceived one, was taken by a consumer that died
        with the daemon, or comes from an older orch (``inbox-*``, ``keep-*``).
        """
        received = {u.id for u in await self.store.read.uploads.all() if u.received_at}
        removed = 0
        for entry in sorted(os.listdir(self.folder)):
            if entry not in received:
                _remove(self.folder / entry)
                removed += 1
        lost = [uid for uid in received if not (self.folder / uid).exists()]
        if lost:  # received, but the file is gone: the slot could only fail its consumer
            async with self.store.write() as w:
                for upload_id in lost:
                    await w.uploads.delete(upload_id)
        return removed

    def _limit(self, kind: str) -> int:
        mb = self.settings.max_package_mb if kind == "binary" else self.settings.max_upload_mb
        return mb * MIB


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        trees.remove(path)
    else:
        path.unlink(missing_ok=True)
