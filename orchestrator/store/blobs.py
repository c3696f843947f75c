"""Content-addressed files: large bytes live on disk, named by their sha256.

The database keeps only hashes, sizes and paths. Writers stream into a
temporary file in the same directory tree and rename at the end, so a blob is
either complete or absent, and identical content is stored once.
"""

from __future__ import annotations

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
        dest.parent.mkdir(exist_ok=True)
        os.replace(src, dest)
        os.chmod(dest, 0o444)
        return dest

    async def add_file(self, src: Path) -> tuple[str, int, Path]:
        """Hash an existing file and move it into the store."""
        sha, size = await anyio.to_thread.run_sync(hash_file, src)
        return sha, size, await self.adopt(src, sha)

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)


def hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


async def stream_to_file(
    chunks: AsyncIterator[bytes], dest: Path, max_bytes: int, what: str = "upload"
) -> tuple[str, int]:
    """Write a request body to ``dest`` chunk by chunk, hashing as it goes.

    Never holds more than one chunk in memory; stops with ``TooLarge`` the
    moment the cap is passed and leaves no partial file behind.
    """
    digest, size = hashlib.sha256(), 0
    try:
        async with await anyio.open_file(dest, "wb") as fh:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"{what} exceeds the limit of {max_bytes // (1024 * 1024)} MiB")
                digest.update(chunk)
                await fh.write(chunk)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return digest.hexdigest(), size
