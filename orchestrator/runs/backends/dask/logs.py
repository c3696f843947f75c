"""A running run's log, pulled from its worker into the daemon's run folder as it grows.

The API (``logs``, ``logs/live``, ``orch app run logs --follow``, the console)
reads the log from ``runs/<id>/stderr`` on the daemon's disk, whatever backend
ran the run. Four times a second the daemon asks the workers running its runs,
in one ``Client.run`` call, for what each log gained since the size the daemon
already has; the answer is appended. Pulling (rather than workers pushing) keeps
the file contiguous whatever was missed (a daemon restart, a slow pull), keeps
nothing in the scheduler's memory, and costs nothing while no run is running.
When the run ends its whole log comes back with its result and replaces what
was streamed (``outputs.write_back``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from orchestrator.runs.backends.dask.link import Connection
from orchestrator.runs.backends.dask.worker import read_logs

log = logging.getLogger("orch.dask.logs")

PULL_SECONDS = 0.25


class Followed(Protocol):
    run_id: str
    worker: str | None
    log_from: int
    done: bool


class LogPuller:
    def __init__(
        self, link: Connection, runs_dir: Path, followed: Callable[[], Iterable[Followed]]
    ) -> None:
        self.link, self.runs_dir, self.followed = link, runs_dir, followed
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="orch-dask-logs")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def pull(self) -> None:
        """One round: every followed run with a known worker gets its new bytes."""
        runs = {f.run_id: f for f in self.followed() if f.worker and not f.done}
        if not runs:
            return
        offsets = {run_id: max(0, self._size(run_id) - f.log_from) for run_id, f in runs.items()}
        workers = sorted({f.worker for f in runs.values() if f.worker})
        client = self.link.client
        answers = await client.run(read_logs, offsets, workers=workers, on_error="return")
        for answer in answers.values():
            if not isinstance(answer, dict):
                continue  # that worker could not answer (it may be leaving)
            for run_id, chunk in answer.items():
                followed = runs.get(run_id)
                if followed is None or followed.done:
                    continue  # ended meanwhile: its whole log comes with its result
                if self._size(run_id) - followed.log_from == offsets[run_id]:
                    self._append(run_id, chunk)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(PULL_SECONDS)
            try:
                await self.pull()
            except Exception as exc:  # a worker or the scheduler may be going away
                log.info("could not pull run logs: %s", exc)

    def _size(self, run_id: str) -> int:
        try:
            return os.stat(self.runs_dir / run_id / "stderr").st_size
        except FileNotFoundError:
            return 0

    def _append(self, run_id: str, chunk: bytes) -> None:
        path = self.runs_dir / run_id / "stderr"
        # Up to 256 KiB into the page cache; a run deleted meanwhile has no folder.
        with contextlib.suppress(FileNotFoundError), path.open("ab") as fh:
            fh.write(chunk)
