"""What a package pushed from the push directory became, once its environment is built.

A dropped package is filed in ``.done/`` as soon as devint runs it, but a python app with
requirements cannot run until its environment is built, and that build can fail (a
requirement that does not exist, an index that is down). ``orch app push`` waits for the
build and names what failed; the push directory has no terminal to say it on, so the
package's ``.reason`` does: it says the environment is being built, then that it is ready
or why it failed (the daemon's log says the failure too). A daemon stopped during the build
leaves "being built": the build resumes at its next start, and ``orch app get`` shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from orchestrator.daemon_log import escaped
from orchestrator.environments import Environments
from orchestrator.inbox_filing import write_reason
from orchestrator.models import EnvStatus

log = logging.getLogger("orch.inbox")

PUSHED = "pushed"
BUILDING = "pushed; its python environment is being built"
READY = "pushed; its python environment is ready"
FAILED = "pushed, but its python environment failed (its runs fail until a push fixes it): "


class EnvironmentReasons:
    """The ``.reason`` of each pushed drop whose environment was being built, brought up to
    date when the build ends."""

    def __init__(self, envs: Environments) -> None:
        self._envs = envs
        self._following: set[asyncio.Task[None]] = set()

    def reason(self, exe_id: str) -> str:
        """The reason to file a drop just pushed as ``exe_id`` with."""
        return BUILDING if self._envs.building(exe_id) else PUSHED

    def follow(self, exe_id: str, filed: Path, origin: Path) -> None:
        """Once ``exe_id``'s build ends, say how in ``filed``'s reason. Asked of every
        drop, not only of those filed as building: a build that found its environment made
        already may have ended before the drop was filed."""
        task = asyncio.create_task(self._settle(exe_id, filed, origin), name="inbox-reason")
        self._following.add(task)
        task.add_done_callback(self._following.discard)

    async def stop(self) -> None:
        for task in list(self._following):
            task.cancel()
        for task in list(self._following):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _settle(self, exe_id: str, filed: Path, origin: Path) -> None:
        try:
            exe = await self._envs.settled(exe_id)
        except Exception as exc:  # the build's own record failed: its log line says so
            log.error("inbox: how the environment of %s went is unknown: %s", exe_id[:12], exc)
            return
        if exe is None or exe.env_status not in (EnvStatus.READY, EnvStatus.FAILED):
            return  # no environment (no requirements), removed, or the daemon is stopping
        if exe.env_status == EnvStatus.FAILED:
            reason = FAILED + exe.env_message
            log.error(
                "inbox: %s was pushed, but its python environment failed: %s",
                escaped(origin),
                escaped(exe.env_message),
            )
        else:
            reason = READY
        if not os.path.lexists(filed):
            return  # its owner moved or removed it: no reason left without its package
        try:
            write_reason(filed, reason)
        except OSError as exc:
            log.error("inbox: the reason of %s could not be written: %s", escaped(filed), exc)
