"""Runs on the Dask scheduler: the first start of a task wins, a restart is refused.

Dask reschedules the tasks of a worker that was lost, and so would start a
model a second time without anyone knowing. Each attempt therefore claims its
key here before the model starts (``Client.run_on_scheduler`` from the worker:
the function runs on the scheduler's event loop, so check-and-set is atomic).
The first claim wins and is announced on ``TOPIC`` (the daemon learns the
worker from it); a later claim of the same key is a rescheduled task and gets
the first worker's address back, so it raises ``RunLost`` instead of running. A key
the daemon withdrew (its run canceled before it started) is claimed by ``WITHDRAWN``:
no worker starts it, not even one that joined after the cancel.

Claims live on the scheduler object and are pruned once their key is gone
from the scheduler (a forgotten key can never be rescheduled).
"""

from __future__ import annotations

from typing import Any

from orchestrator.runs.backends.dask.protocol import TOPIC

_ATTRIBUTE = "_orch_claims"
_PRUNE_ABOVE = 1024


def claim(key: str, worker: str, run_id: str, dask_scheduler: Any = None) -> str:
    """Claim ``key`` for ``worker``; returns the worker that holds the claim."""
    claims = _claims(dask_scheduler)
    first: str = claims.setdefault(key, worker)
    if first == worker:
        dask_scheduler.log_event(
            TOPIC, {"event": "accepted", "run": run_id, "key": key, "worker": worker}
        )
    if len(claims) > _PRUNE_ABOVE:
        for gone in [k for k in claims if k not in dask_scheduler.tasks]:
            del claims[gone]
    return first


WITHDRAWN = "withdrawn"
"""The claim of a key the daemon let go of before any worker claimed it."""


def withdraw(key: str, dask_scheduler: Any = None) -> str:
    """Refuse every later claim of ``key``: the daemon canceled its run before it started.

    Releasing the task is not enough: until the daemon unpublishes the run, the scheduler
    keeps the task and may hand it to a worker that joined after the cancel was broadcast
    (no tombstone there), which would start a canceled model once. Returns the claim that
    holds: ``WITHDRAWN``, or the worker that claimed the key first (the cancel kills it).
    """
    return _claims(dask_scheduler).setdefault(key, WITHDRAWN)


def lookup(keys: list[str], dask_scheduler: Any = None) -> dict[str, str]:
    """Which worker claimed each of ``keys`` (a restarted daemon finding its runs)."""
    claims = _claims(dask_scheduler)
    return {key: claims[key] for key in keys if key in claims}


def _claims(scheduler: Any) -> dict[str, str]:
    claims: dict[str, str] | None = getattr(scheduler, _ATTRIBUTE, None)
    if claims is None:
        claims = {}
        setattr(scheduler, _ATTRIBUTE, claims)
    return claims
