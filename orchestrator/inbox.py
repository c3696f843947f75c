"""The push directory: packages dropped into ``<home>/push/<app-id>/`` are pushed.

A file is taken once it is under its final name: temp names (``*.tmp``,
``*.part``, dot files) are ignored, and a package that is still being written
(it fails to unpack and changed less than ``SETTLE_SECONDS`` ago) is retried
when it settles instead of being rejected, and one met by a full disk is taken
again once there is room. A folder containing ``app.yaml``
moved in atomically is packaged and pushed the same way. Each package ends up
in ``.done/`` or ``.rejected/`` (with a ``.reason`` file), so it is never
ingested twice; a scan at start picks up what arrived while the daemon was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from pathlib import Path

import anyio
from watchfiles import awatch

from orchestrator.disk import is_disk_full
from orchestrator.errors import OrchError
from orchestrator.home import Home
from orchestrator.ids import new_token
from orchestrator.packaging.build import FileChanged, build_package
from orchestrator.packaging.manifest import MANIFEST_FILE
from orchestrator.registry.push import PushService

log = logging.getLogger("orch.inbox")

PACKAGE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp", "~")
SETTLE_SECONDS = 2.0
DISK_RETRY_SECONDS = 10.0
DISK_TRIES = 3
WATCH_STEP_MS = 50
"""How often the watcher thread wakes to look for changes and for the stop event. Each
wake takes the GIL from the event loop: at 5 ms that was 200 wakes a second on an idle
daemon, ~0.3-0.7 ms of CPU per run in the throughput benchmark (plus the loop's hand-offs);
a dropped package waits at most this much longer, next to the 400 ms debounce."""


def is_candidate(path: Path, push_root: Path) -> bool:
    """``push/<app>/<entry>`` with a final, non-temporary name."""
    try:
        rel = path.relative_to(push_root)
    except ValueError:
        return False
    if len(rel.parts) != 2 or any(p.startswith(".") for p in rel.parts):
        return False
    name = rel.parts[1]
    if name.endswith(TEMP_SUFFIXES):
        return False
    if path.is_dir():
        return (path / MANIFEST_FILE).is_file()
    return name.endswith(PACKAGE_SUFFIXES) and path.is_file()


class Inbox:
    def __init__(self, home: Home, push: PushService) -> None:
        self.root = home.push
        self.scratch = home.scratch("inbox")
        self.push = push
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._queue: asyncio.Queue[Path] = asyncio.Queue()
        self._pending: set[Path] = set()
        self._disk_tries: dict[Path, int] = {}
        """Times a package met a full disk; it is rejected after ``DISK_TRIES``."""

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._loop(), name="inbox")
        for app_dir in sorted(self.root.iterdir()):
            self._offer_entries(app_dir)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _offer_entries(self, app_dir: Path) -> None:
        """What an app's folder holds already: at start, and when the folder itself is new
        (a package moved in right after it was made can land before its watch exists)."""
        if app_dir.is_dir() and not app_dir.name.startswith("."):
            with contextlib.suppress(OSError):  # removed meanwhile (the app was deleted)
                for entry in sorted(app_dir.iterdir()):
                    self._offer(entry)

    def _offer(self, path: Path) -> None:
        if path not in self._pending and is_candidate(path, self.root):
            self._pending.add(path)
            self._queue.put_nowait(path)

    async def _loop(self) -> None:
        worker = asyncio.create_task(self._work())
        try:
            async for changes in awatch(
                self.root, stop_event=self._stop, step=WATCH_STEP_MS, debounce=400, recursive=True
            ):
                for _change, raw in sorted(changes, key=lambda c: c[1]):
                    path = Path(raw)
                    if path.parent == self.root:
                        self._offer_entries(path)
                    else:
                        self._offer(path)
        finally:
            worker.cancel()

    async def _work(self) -> None:
        while True:
            path = await self._queue.get()
            try:
                await self._ingest(path)
            except Exception:
                log.exception("inbox failed on %s", path)
            finally:
                self._pending.discard(path)

    async def _ingest(self, path: Path) -> None:
        if not path.exists():
            return
        app_id = path.parent.name
        try:
            archive = await anyio.to_thread.run_sync(_claim, path, self.scratch)
            await self.push.ingest(app_id, archive, action="push")
        except Exception as exc:
            self._failed(path, exc)
        else:
            self._disk_tries.pop(path, None)
            _file_away(path, ".done", "pushed")

    def _failed(self, path: Path, exc: Exception) -> None:
        """A full disk is no fault of the package: it is taken again later, unless it
        filled the disk every time (``DISK_TRIES``: it needs more room than there is). A
        package still being written is retried once it settles; anything else is rejected
        with why, never left where it is without a word."""
        if is_disk_full(exc):
            tries = self._disk_tries[path] = self._disk_tries.get(path, 0) + 1
            if tries < DISK_TRIES:
                log.warning("inbox: %s waits for disk space", path)
                self._retry_later(path, DISK_RETRY_SECONDS)
                return
            why = (
                f"pushing it filled the disk under orch's home {tries} times: it needs more "
                "room than the disk has (a package takes about three times its size while it "
                "is pushed); free space, then move it back into its app's folder"
            )
            self._reject(path, why)
        elif isinstance(exc, FileChanged) or (
            isinstance(exc, OrchError | OSError) and _recently_changed(path)
        ):
            self._retry_later(path)  # still being written, or changed while it was packaged
        elif isinstance(exc, OrchError):
            self._reject(path, exc.message)
        else:
            log.error("inbox could not push %s", path, exc_info=exc)
            self._reject(path, f"orch could not push it: {type(exc).__name__}: {exc}")

    def _reject(self, path: Path, why: str) -> None:
        self._disk_tries.pop(path, None)
        _file_away(path, ".rejected", why)
        log.warning("inbox rejected %s: %s", path, why)

    def _retry_later(self, path: Path, delay: float = SETTLE_SECONDS) -> None:
        loop = asyncio.get_running_loop()
        self._pending.add(path)
        loop.call_later(delay, lambda: self._queue.put_nowait(path))


def _claim(path: Path, scratch: Path) -> Path:
    """A private copy to ingest (a folder is packaged first); the original stays put.

    The copy lives in the home (``tmp/inbox/``) so ingesting it is a rename; a copy a
    killed daemon left there goes at the next start, and the original is taken again.
    """
    target = scratch / f"inbox-{new_token()[:16]}.tar.gz"
    try:
        if path.is_dir():
            build_package(path, target)
        else:
            shutil.copyfile(path, target)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


def _recently_changed(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime < SETTLE_SECONDS
    except OSError:
        return False


def _file_away(path: Path, folder: str, reason: str) -> None:
    """Move a handled package aside so a restart never ingests it again."""
    if not path.exists():
        return
    dest_dir = path.parent / folder
    dest_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    dest = dest_dir / f"{stamp}-{path.name}"
    os.replace(path, dest)
    # whole or not at all: a watcher that saw the file being written read an empty reason
    written = Path(f"{dest}.reason.part")
    written.write_text(reason + "\n")
    os.replace(written, f"{dest}.reason")
