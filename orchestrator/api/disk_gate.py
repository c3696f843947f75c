"""Requests that add data are refused with 507 while the disk is low, before a byte is read.

A write that starts on a nearly full disk would fail half-way (a half upload,
a run whose output cannot land) or eat the room orch keeps for recording how
runs end. So ``POST`` and ``PUT`` (and ``GET .../binary``, which opens an
upload slot) answer 507 with the free space needed while the disk monitor
says ``low`` or ``full``; a body that announces its size must also fit above
the threshold. Reads, ``DELETE`` (which frees space) and cancels (``PATCH``)
always pass: they are how a user gets out of a full disk.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator.api.errors import error_response
from orchestrator.disk import DiskMonitor
from orchestrator.errors import DiskFull

WRITES = frozenset({"POST", "PUT"})


class DiskGate:
    def __init__(self, app: ASGIApp, disk: DiskMonitor) -> None:
        self.app, self.disk = app, disk

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and adds_data(scope["method"], scope["path"]):
            try:
                self.disk.require_space(_announced_size(scope))
            except DiskFull as exc:
                await error_response(exc.status, exc.message)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def adds_data(method: str, path: str) -> bool:
    return method in WRITES or (method == "GET" and path.endswith("/binary"))


def _announced_size(scope: Scope) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and value.isdigit():
            return int(value)
    return 0
