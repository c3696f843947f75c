"""Requests that add data are refused with 507 while the disk is low, before a byte is read.

A write that starts on a nearly full disk would fail half-way (a half upload,
a run whose output cannot land) or eat the room orch keeps for recording how
runs end. So ``POST`` and ``PUT`` (and ``GET .../binary``, which opens an
upload slot) answer 507 with the free space needed while the disk monitor
says ``low`` or ``full``; a body that announces its size must also fit above
the threshold, besides the bodies still arriving (``DiskMonitor.claim``). Reads,
``DELETE`` (which frees space) and cancels (``PATCH``) always pass: they are how a
user gets out of a full disk. Checked before routing by ``api/gate.py`` (and the hot
routes, ``api/hot_path.py``).
"""

from __future__ import annotations

from orchestrator.disk import DiskMonitor
from orchestrator.errors import DiskFull

WRITES = frozenset({"POST", "PUT"})


def disk_refusal(disk: DiskMonitor, method: str, path: str, announced: int) -> DiskFull | None:
    """The 507 for a request that adds data (``announced`` bytes of body) to a low disk."""
    if not adds_data(method, path):
        return None
    try:
        disk.require_space(announced)
    except DiskFull as exc:
        return exc
    return None


def adds_data(method: str, path: str) -> bool:
    return method in WRITES or (method == "GET" and path.endswith("/binary"))
