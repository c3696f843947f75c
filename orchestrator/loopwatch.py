"""How late the event loop answers: the measure of "the daemon stays responsive".

A task asks to wake every ``interval`` and records how much later it actually
woke: that lateness is the time the loop spent on something else without
yielding (a stall). Off by default (it wakes the loop 100 times a second); the
benchmarks turn it on with ``loop_monitor = true`` (or ``ORCH_LOOP_MONITOR=1``)
and read the figures from ``/healthz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

STALL_MS = 50.0


class LoopWatch:
    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.max_lag_ms = 0.0
        self.stalls = 0
        """Wake-ups later than ``STALL_MS``."""
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="loop-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(self.interval)
            lag_ms = (time.perf_counter() - asked - self.interval) * 1000
            self.samples += 1
            self.max_lag_ms = max(self.max_lag_ms, lag_ms)
            if lag_ms > STALL_MS:
                self.stalls += 1

    def figures(self) -> dict[str, Any]:
        return {
            "max_lag_ms": round(self.max_lag_ms, 2),
            "stalls_over_50ms": self.stalls,
            "samples": self.samples,
        }
