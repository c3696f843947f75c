"""Runs on the Dask scheduler: the first start of a task wins, a restart is refused.

Dask reschedules the tasks of a worker that was lost, and so would start a
model a second time without anyone knowing. Each attempt therefore claims its
key here before the model starts (``Client.run_on_scheduler`` from the worker:
the function runs on the scheduler's event loop, so check-and-set is atomic).
The first claim wins and is announced on ``TOPIC`` (the daemon learns the
worker from it); a later claim of the same key is a rescheduled task and gets
the first worker's address back, so it raises ``RunLost`` instead of running.

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
