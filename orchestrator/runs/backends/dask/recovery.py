"""After a daemon restart: reattach to its runs still on the cluster, stop the others.

A run's task is published as a dataset named after this daemon and the run, so
it survives the daemon (Dask would otherwise drop the task of a client that
went away). At start-up the daemon lists its datasets:

- a run the database says is running, with its dataset: reattached (the engine
  supervises it again; its worker is read from the scheduler's claims so its
  log and a cancel reach it);
- a running run without a dataset (the scheduler restarted, say): not reattached,
  so recovery ends it ``daemon_stopped``; the cluster is told it is over;
- a dataset of a run that is not running (queued again, finished, deleted, or
  spawned a moment before a start that was never written): withdrawn, and the
  cluster told it is over.

"Told it is over" is ``execution.settle``, as for a run the outage failed: its claims
withdrawn (so a worker that still runs it stops it, even one that was not connected
when the kill was sent), killed on every worker, its record dropped.

Runs this daemon ran locally before switching to the cluster are swept as the
local backend does.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from orchestrator import trees
from orchestrator.models import Run
from orchestrator.runs.backends.dask import claims
from orchestrator.runs.backends.dask.execution import (
    Context,
    DaskExecution,
    attempt_keys,
    settle,
    withdraw,
)
from orchestrator.runs.backends.dask.protocol import dataset_prefix
from orchestrator.runs.backends.local import sweep_leftovers

log = logging.getLogger("orch.dask.recovery")


async def reattach(ctx: Context, running: list[Run], known: set[str]) -> dict[str, DaskExecution]:
    client, prefix = ctx.client, dataset_prefix(ctx.tenant)
    on_cluster = [r for r in running if (r.placement or {}).get("backend") == "dask"]
    for run in running:
        if run not in on_cluster:
            sweep_leftovers(run)  # ran locally before the daemon moved to the cluster
    names = [str(n) for n in await client.list_datasets() if str(n).startswith(prefix)]
    records: dict[str, dict[str, Any]] = {}
    for name in names:
        record = await client.get_dataset(name, default=None)
        if isinstance(record, dict):
            records[name[len(prefix) :]] = record
    workers: dict[str, str] = await client.run_on_scheduler(
        claims.lookup, [r["spec"].key for r in records.values()]
    )
    alive: dict[str, DaskExecution] = {}
    for run in on_cluster:
        record = records.pop(run.id, None)
        if record is None:
            await settle(
                ctx, run.id, attempt_keys(run.id, int((run.placement or {}).get("attempt") or 1))
            )
            continue
        spec = record["spec"]
        alive[run.id] = DaskExecution(
            ctx,
            spec,
            record["task"],
            record["blobs"],
            retries_left=int(record["retries_left"]),
            log_from=int(record["log_from"]),
            worker=workers.get(spec.key),
            published=True,
        )
    for run_id, record in records.items():  # on the cluster, but not running here
        withdraw(record["task"])  # never Future.cancel: see ``withdraw``
        await settle(ctx, run_id, attempt_keys(run_id, record["spec"].attempt))
    _remove_unwritten(ctx, known)
    if alive or records:
        log.warning(
            "reattached to %d run(s) on the cluster; withdrew %d task(s) of runs not running",
            len(alive),
            len(records),
        )
    return alive


def _remove_unwritten(ctx: Context, known: set[str]) -> None:
    """Folders of runs no row names (spawned a moment before a start never written)."""
    for run_id in set(os.listdir(ctx.runs_dir)) - known:
        trees.remove(ctx.runs_dir / run_id)
