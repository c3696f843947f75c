"""Slow housekeeping, one call at a time, on a thread of its own.

Removing a cgroup (the kernel waits for an RCU grace period: up to ~10 ms on
v1), forking a standby shell into a fresh group, emptying a run's ``tmp``
folder: each blocks its caller for 0.1-10 ms while using little CPU. Measured
on the event loop during 500 back-to-back runs, these calls held it ~2.5 s
out of ~13 s, and every spawn and HTTP answer due in that time waited. Here
they wait on a thread instead, in the order they were asked for.

Nothing here may be needed for correctness *soon*: a chore runs "later", and
``close()`` runs whatever is still pending before it returns. That is what
lets the thread take its chores in batches: after a batch it naps
``GATHER_SECONDS`` before it looks again, and a chore asked for meanwhile is
only queued. A run asks for three (its cgroup's removal, its ``tmp``, a new
standby); woken for each, the thread cost the loop a futex wake and a GIL hand-off
every time (the saving was below what a paired A/B resolves, ~0.1 ms per run).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from orchestrator.threads import give_way_to_the_loop, show_name

log = logging.getLogger(__name__)

GATHER_SECONDS = 0.01
"""How long the thread lets chores gather after a batch (a model runs longer)."""


class Chores:
    def __init__(self) -> None:
        self._pending: deque[Callable[[], object]] = deque()
        self._wake = threading.Condition()
        self._sleeping = False
        """Blocked until told: only then does ``later`` pay for a wake-up."""
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="orch-chores", daemon=True)
        self._thread.start()

    def later(self, chore: Callable[[], object]) -> None:
        """Run ``chore`` on the chores thread; once closed, right here."""
        with self._wake:
            if not self._closed:
                self._pending.append(chore)
                if self._sleeping:
                    self._sleeping = False
                    self._wake.notify()
                return
        _run(chore)

    def close(self) -> None:
        """Run what was asked for, then stop the thread (idempotent)."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()

    def _work(self) -> None:
        give_way_to_the_loop()
        show_name()
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._sleeping = True
                    self._wake.wait()
                batch = list(self._pending)
                self._pending.clear()
                done = self._closed
            for chore in batch:
                _run(chore)
            if done:
                return
            time.sleep(GATHER_SECONDS)


def _run(chore: Callable[[], object]) -> None:
    try:
        chore()
    except Exception:  # a failed chore must not stop the thread or the caller
        log.exception("chore %r failed", chore)
