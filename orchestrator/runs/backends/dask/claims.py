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

A claim is also the lease the model runs under: a worker keeps its model running only
while the scheduler says the key is still its own (``WorkerRunner`` asks with ``lookup``
every few seconds). The daemon withdraws the key of a run it ended without its worker's
word (failed when its connection to the scheduler broke, canceled while the scheduler was
away), and every attempt's key of a run it started again after a failover (a worker
reported lost may live on, its model under a claim that still names it), which takes the
claim over; a scheduler that came back empty has no claim at all.
Either way a worker that still runs the model stops it, including one the daemon's kill
never reached (it rejoined later, or the daemon itself restarted meanwhile): the claim is
the one record every party can reach, so it is where "this run is over" is written.

Claims live on the scheduler object and are pruned once their key is gone
from the scheduler (a forgotten key can never be rescheduled, and a model still
running under it is wanted by nobody: its worker stops it).
"""

from __future__ import annotations

import logging
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
    """Refuse every later claim of ``key``, and take it from the worker that holds it: the
    daemon let go of its run (canceled before it started, or ended without its result).

    Releasing the task is not enough: until the daemon unpublishes the run, the scheduler
    keeps the task and may hand it to a worker that joined after the cancel was broadcast
    (no tombstone there), which would start a canceled model once. A worker already running
    the model loses its lease and stops it (``WorkerRunner``), even if the daemon's kill
    never reached it. Returns the claim it replaced: ``WITHDRAWN`` if no worker had claimed
    the key, else that worker (the daemon's kill stops it at once).
    """
    claims = _claims(dask_scheduler)
    first = claims.get(key, WITHDRAWN)
    claims[key] = WITHDRAWN
    return first


def lookup(keys: list[str], dask_scheduler: Any = None) -> dict[str, str]:
    """Who holds the claim of each of ``keys`` (a restarted daemon finding its runs; a
    worker checking that its models still hold their lease); a key without a claim is
    left out."""
    logging.getLogger("distributed.worker").addFilter(_quiet_lease_checks)  # once: same one
    claims = _claims(dask_scheduler)
    return {key: claims[key] for key in keys if key in claims}


def _quiet_lease_checks(record: logging.LogRecord) -> bool:
    """Dask logs every function run on the scheduler (with its worker-side logger), and
    each worker running models checks their leases every few seconds: once is enough."""
    return not record.getMessage().startswith("Run out-of-band function 'lookup'")


def _claims(scheduler: Any) -> dict[str, str]:
    claims: dict[str, str] | None = getattr(scheduler, _ATTRIBUTE, None)
    if claims is None:
        claims = {}
        setattr(scheduler, _ATTRIBUTE, claims)
    return claims
