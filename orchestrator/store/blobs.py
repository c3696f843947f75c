"""Content-addressed files: large bytes live on disk, named by their sha256.

The database keeps only hashes, sizes and paths. Writers stream into a
temporary file in the same directory tree and rename at the end, so a blob is
either complete or absent, and identical content is stored once.

Blobs are sharded by the first two hex digits of their hash (``<root>/ab/ab…``), and a
shard folder goes with its last blob (``drop_empty_shard``): a home that saw 100k inputs
come and go kept 256 empty folders for ever, and every walk of the store read them. No
lock is shared by writers and removers (a push, an input kept, a collection, an app
delete, the start's sweep), so a writer that finds its shard gone between making it and
renaming into it makes it again (``_place``); ``rmdir`` removes only an empty folder, so
a remover never takes a blob with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from orchestrator.errors import TooLarge

CHUNK = 1024 * 1024


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    async def adopt(self, src: Path, sha256: str) -> Path:
        """Move a finished file into the store under its hash (dropping it if already there)."""
        dest = self.path(sha256)
        if dest.exists():
            src.unlink(missing_ok=True)
            return dest
        os.chmod(src, 0o444)  # read-only before it is visible under its hash
        _place(src, dest)
        return dest

    async def add_file(self, src: Path) -> tuple[str, int, Path]:
        """Hash an existing file and move it into the store."""
        sha, size = await anyio.to_thread.run_sync(hash_file, src)
        return sha, size, await self.adopt(src, sha)

    def delete(self, sha256: str) -> None:
        """Remove a blob, and its shard folder if that was its last one."""
        path = self.path(sha256)
        path.unlink(missing_ok=True)
        drop_empty_shard(path.parent)


def drop_empty_shard(shard: Path) -> None:
    """Remove ``shard`` if it holds nothing (else, or if it is gone already, leave it)."""
    with contextlib.suppress(OSError):  # not empty, not a folder, or removed meanwhile
        os.rmdir(shard)


PLACE_TRIES = 1000
"""Times a writer makes its shard again when a remover took it away: two in a row at most
in 19,000 stress rounds (``tests/test_blob_shards.py``, 2 threads on 2 busy cores); the
bound only keeps a broken file system from looping for ever."""


def _place(src: Path, dest: Path) -> None:
    """Rename ``src`` to ``dest`` in a shard folder that a remover may take away at any
    moment while it is empty: the folder is made again until the rename lands in it."""
    for _ in range(PLACE_TRIES):
        with contextlib.suppress(FileExistsError):  # not ``exist_ok``: it raises when the
            os.mkdir(dest.parent)  # folder is removed between its EEXIST and its check
        try:
            os.replace(src, dest)
            return
        except FileNotFoundError:
            if not os.path.lexists(src):
                raise  # the file itself is missing: no retry brings it back
    raise OSError(f"the blob folder {dest.parent} kept vanishing while {dest.name} was stored")


def hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


async def stream_to_file(
    chunks: AsyncIterator[bytes],
    dest: Path,
    max_bytes: int,
    what: str = "upload",
    announced: int | None = None,
) -> int:
    """Write a request body to ``dest`` as it arrives; returns its size.

    Writes are plain buffered writes on the event loop: a chunk lands in the
    page cache in microseconds, while a thread hop per chunk capped a 1 GiB
    upload at a third of the disk's speed (measured). Memory stays at one
    buffer; the cap stops the upload the moment it is passed, leaving no file.
    Nothing is hashed here: packages are hashed when ingested, inputs never. A body
    ``announced`` (its ``Content-Length``) over the cap is refused before a byte is read.
    """
    if announced is not None and announced > max_bytes:
        raise _too_large(what, max_bytes)
    size = 0
    try:
        with open(dest, "wb", buffering=CHUNK) as fh:  # noqa: ASYNC230 - see docstring
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise _too_large(what, max_bytes)
                fh.write(chunk)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return size


def _too_large(what: str, max_bytes: int) -> TooLarge:
    return TooLarge(f"{what} exceeds the limit of {max_bytes // (1024 * 1024)} MiB")
