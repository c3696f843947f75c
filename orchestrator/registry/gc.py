"""Garbage collection of packages that nothing points at any more."""

from __future__ import annotations

from orchestrator import trees
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
        trees.remove(home.executables / exe_id)  # read-only folders: it makes them writable
    return [exe_id for exe_id, _ in doomed]
