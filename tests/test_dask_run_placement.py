"""A Dask run's metadata names the worker that ran it and the protections it ran under.

A local run's metadata shows ``isolation``, the protections its model ran under (its
placement's ``protections``). A Dask run's placement is written when it is claimed, before
any worker accepted it, so it is completed when the run ends (``Finish.placement``): the
worker whose attempt produced the result and the protections its model ran under as that
worker reports them (``ProcessResult.isolation``), or, for an attempt lost with its worker,
that worker and the protections it described to the cluster. Metadata shows them as
``isolation`` (the local runs' field) and orch's own ``worker``.

Real ``dask scheduler`` and ``dask worker`` processes under a real daemon over HTTP; the
retry and the lost worker on a cluster of their own (its workers are killed). One test in
process, for the one writer of run state.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.models import App, EnvStatus, Executable, Run, RunStatus, now
from orchestrator.runs.events import RunEvents
from orchestrator.runs.states import Finish, RunStates
from orchestrator.store import Store
from tests.dask_cluster import ClusterPool, DaskCluster, DaskWorker
from tests.helpers import Daemon, wait_for, wait_run
from tests.test_dask import _push_probe, facts_in_log, start, sturdy_instance, worker_of


def _workers(api: httpx.Client) -> dict[str, dict[str, Any]]:
    """The cluster's workers by address, once each described its sandbox (``/healthz``)."""

    def described() -> dict[str, dict[str, Any]] | None:
        workers: dict[str, dict[str, Any]] = api.get("/healthz").json()["backend"]["cluster"]
        return workers if workers and all("protections" in w for w in workers.values()) else None

    return wait_for(described, timeout=30)


def _address(workers: dict[str, dict[str, Any]], worker: DaskWorker) -> str:
    return next(address for address, w in workers.items() if w["name"] == worker.name)


@pytest.fixture
def two_workers(
    dask_clusters: ClusterPool, request: pytest.FixtureRequest
) -> Iterator[DaskCluster]:
    """Two workers of one slot each: two runs at once land one on each."""

    def start_two(root: Path) -> DaskCluster:
        return DaskCluster.start(root, workers=2, slots=1)

    with dask_clusters.lend(request, "two-of-one", start_two) as cluster:
        yield cluster


def test_each_run_names_the_worker_that_ran_it_and_its_protections(
    two_workers: DaskCluster, tmp_path: Path
) -> None:
    d = Daemon.start(tmp_path / "home", config=f'executor = "{two_workers.executor}"\n')
    try:
        with d.client() as api:
            workers = _workers(api)
            app_id = _push_probe(api, tmp_path)
            runs = [start(api, app_id, {"input": {"sleep": 1}}) for _ in range(2)]
            results = [wait_run(api, app_id, r) for r in runs]
            seen = set()
            for res in results:
                meta = res["metadata"]
                assert meta["status_v2"] == "succeeded", meta["error"]
                ran_on = _address(workers, worker_of(two_workers, res["output"]["tmp"]))
                assert meta["worker"] == ran_on
                protections = workers[ran_on]["protections"]
                assert meta["isolation"] == protections and "no-new-privs" in protections
                seen.add(meta["worker"])
                # the run's own metadata route says the same as its result
                own = api.get(f"/v1/applications/{app_id}/runs/{res['id']}/metadata").json()
                assert own["metadata"]["worker"] == ran_on
                assert own["metadata"]["isolation"] == protections
            assert seen == set(workers)  # one run on each worker: each named its own
    finally:
        d.stop()


def test_a_retried_run_names_the_worker_of_its_result_and_a_lost_one_its_lost_worker(
    tmp_path: Path,
) -> None:
    cluster = DaskCluster.start(tmp_path / "cluster", workers=2, slots=1)
    try:
        d = Daemon.start(tmp_path / "home", config=f'executor = "{cluster.executor}"\n')
        try:
            with d.client() as api:
                workers = _workers(api)
                app_id = _push_probe(api, tmp_path)
                sturdy_instance(api, app_id)

                # attempt 1's worker is killed; attempt 2 runs on the other one and succeeds
                run_id = start(api, app_id, {"input": {"sleep": 3, "value": 7}}, "sturdy")
                victim = worker_of(cluster, facts_in_log(api, app_id, run_id, "tmp")["tmp"])
                survivor = next(w for w in cluster.workers if w is not victim)
                victim.kill()
                res = wait_run(api, app_id, run_id, timeout=60)
                meta = res["metadata"]
                assert meta["status_v2"] == "succeeded", meta["error"]
                assert worker_of(cluster, res["output"]["tmp"]) is survivor
                assert meta["worker"] == _address(workers, survivor)
                assert meta["isolation"] == workers[meta["worker"]]["protections"]

                # no retry allowed: the run fails with its worker, which it names
                lost = start(api, app_id, {"input": {"sleep": 120}})
                facts_in_log(api, app_id, lost, "pid")
                survivor.kill()
                meta = wait_run(api, app_id, lost, timeout=60)["metadata"]
                assert meta["status_v2"] == "failed" and meta["failure"]["kind"] == "worker_lost"
                assert meta["worker"] == _address(workers, survivor)
                assert meta["isolation"] == workers[meta["worker"]]["protections"]
        finally:
            d.stop()
    finally:
        cluster.stop()


async def test_a_finish_replaces_the_claims_placement_only_when_it_brings_one(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "orch.db")
    await store.open()
    try:
        exe_id = "e" * 64
        async with store.write() as w:
            await w.executables.insert_if_missing(
                Executable(exe_id, 1, {}, "python", "py", EnvStatus.NONE), "blobs/x"
            )
            await w.apps.insert(App("app", "App", executable_id=exe_id))
        states = RunStates(store, RunEvents())
        claimed = {"backend": "dask", "scheduler": "tcp://s:1", "key": "k-1", "attempt": 1}
        ended = claimed | {
            "key": "k-2",
            "attempt": 2,
            "worker": "tcp://w:2",
            "protections": ["uid"],
        }
        runs = [Run(f"run-{n}", "app", "devint", exe_id, created_at=now()) for n in (1, 2)]
        await states.create_many(runs)
        for run in runs:
            assert await states.claim(run, claimed)
        assert await states.finish("run-1", Finish(RunStatus.SUCCEEDED, placement=ended))
        assert await states.finish("run-2", Finish(RunStatus.FAILED))
        first, second = [await store.read.runs.get(r.id) for r in runs]
        assert first is not None and first.placement == ended
        assert second is not None and second.placement == claimed
    finally:
        await store.close()
