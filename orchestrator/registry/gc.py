"""Garbage collection of packages that nothing points at any more."""

from __future__ import annotations

import os
import shutil

from orchestrator.home import Home
from orchestrator.store import Store
from orchestrator.store.blobs import BlobStore


async def collect_garbage(store: Store, home: Home, blobs: BlobStore) -> list[str]:
    """Delete executables no app, version or unfinished run references; returns their ids.

    A finished run keeps the id of the executable it used as a record, not as
    a reference: its outputs stay, the package may go.
    """
    async with store.write() as w:
        doomed = await w.executables.unreferenced()
        await w.executables.delete([exe_id for exe_id, _ in doomed])
    for exe_id, _ in doomed:
        blobs.delete(exe_id)
        _remove_read_only_tree(home.executables / exe_id)
    return [exe_id for exe_id, _ in doomed]


def _remove_read_only_tree(path: os.PathLike[str]) -> None:
    """Unpacked packages are made read-only; give write back before deleting them."""
    if not os.path.exists(path):
        return
    for root, dirs, _files in os.walk(path):
        os.chmod(root, 0o755)
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
    shutil.rmtree(path, ignore_errors=True)
