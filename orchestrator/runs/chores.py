"""Slow housekeeping, one call at a time, on a thread of its own.

Removing a cgroup (the kernel waits for an RCU grace period: up to ~10 ms on
v1), forking a standby shell into a fresh group, emptying a run's ``tmp``
folder: each blocks its caller for 0.1-10 ms while using little CPU. Measured
on the event loop during 500 back-to-back runs, these calls held it ~2.5 s
out of ~13 s, and every spawn and HTTP answer due in that time waited. Here
they wait on a thread instead, in the order they were asked for.

Nothing here may be needed for correctness *soon*: a chore runs "later", and
``close()`` runs whatever is still pending before it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from orchestrator.threads import give_way_to_the_loop

log = logging.getLogger(__name__)


class Chores:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="orch-chores", initializer=give_way_to_the_loop
        )

    def later(self, chore: Callable[[], object]) -> None:
        """Run ``chore`` on the chores thread; once closed, right here."""
        try:
            self._pool.submit(_run, chore)
        except RuntimeError:  # shut down
            _run(chore)

    def close(self) -> None:
        """Run what was asked for, then stop the thread (idempotent)."""
        self._pool.shutdown(wait=True)


def _run(chore: Callable[[], object]) -> None:
    try:
        chore()
    except Exception:  # a failed chore must not stop the thread or the caller
        log.exception("chore %r failed", chore)
