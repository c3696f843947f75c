"""A run that never reached a worker is not failed for a lost one: it waits for the cluster.

Real ``dask scheduler`` and ``dask worker`` processes under a real daemon, each test on a
cluster of its own (one worker, one slot), which it damages:

- the scheduler dies while a run runs and another waits queued: the running one fails
  ``worker_lost`` (its task went with the scheduler), the queued one, handed the slot the
  other freed, stays queued (it is not submitted to a client with no scheduler), survives
  a daemon stopped meanwhile, and runs once the cluster is back;
- the scheduler dies while a run was handed to it but no worker had accepted it yet (a
  ``queuing.disabled`` run past the slots, waiting for the busy worker): it stays
  ``running``, its log says it waits for the cluster, and it runs once the cluster is back,
  with no retry allowed, so none used;
- the only worker dies under a run allowed one retry, and none comes back for longer than
  Dask waits for one to scatter to: the retry waits for a worker (no orch crash), and so
  does the run staged behind it; both run once a worker joins.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.dask_cluster import DaskCluster
from tests.helpers import Daemon, wait_for, wait_run, with_constants
from tests.test_dask import _push_probe, facts_in_log, log_of, start, sturdy_instance

FAST = {
    # the link's backoff doubles up to 2 s instead of 5 (the scheduler, once back, is
    # found sooner), and Dask's client (whose timeout bounds how long a scatter waits for
    # a worker) gives up after 2 s instead of 10: the same code paths, shorter waits
    "orchestrator.runs.backends.dask.link.BACKOFF_MAX_SECONDS": 2,
    "orchestrator.runs.backends.dask.link.CONNECT_SECONDS": 2,
}


def _daemon(cluster: DaskCluster, home: Path, extra: str = "") -> Daemon:
    config = f'executor = "{cluster.executor}"\n{extra}'
    return Daemon.start(home, config=config, launcher=with_constants(FAST))


@contextmanager
def _on_a_cluster_of_one(tmp_path: Path) -> Iterator[tuple[DaskCluster, Daemon]]:
    """A cluster of one worker with one slot, a daemon on it; both stopped after."""
    cluster = DaskCluster.start(tmp_path / "cluster", workers=1, slots=1)
    try:
        d = _daemon(cluster, tmp_path / "home")
        try:
            yield cluster, d
        finally:
            d.stop()
    finally:
        cluster.stop()


def _status(api: httpx.Client, app_id: str, run_id: str) -> str:
    meta = api.get(f"/v1/applications/{app_id}/runs/{run_id}/metadata").json()["metadata"]
    return str(meta["status_v2"])


def _stays(api: httpx.Client, app_id: str, run_id: str, status: str, seconds: float) -> None:
    """The run's status is ``status`` at every look for ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert _status(api, app_id, run_id) == status
        time.sleep(0.1)


def _said(api: httpx.Client, app_id: str, run_id: str, words: str) -> str | None:
    """The run's log once it says ``words``."""
    text = log_of(api, app_id, run_id)
    return text if words in text else None


def _down(api: httpx.Client) -> bool:
    return api.get("/healthz").json()["backend"].get("connected") is False


def test_the_queued_run_given_a_dead_schedulers_slot_stays_queued_and_runs_once_it_is_back(
    tmp_path: Path,
) -> None:
    cluster = DaskCluster.start(tmp_path / "cluster", workers=1, slots=1)
    d = _daemon(cluster, tmp_path / "home", "shutdown_grace_seconds = 0.5\n")
    try:
        with d.client() as api:
            app_id = _push_probe(api, tmp_path)
            running = start(api, app_id, {"input": {"sleep": 120}})
            facts_in_log(api, app_id, running, "pid")
            queued = start(api, app_id, {"input": {"value": 3}})
            assert _status(api, app_id, queued) == "queued"
            time.sleep(1)  # staged at the head of the queue (its files shipped)

            cluster.kill_scheduler()
            meta = wait_run(api, app_id, running, timeout=30)["metadata"]
            assert meta["status_v2"] == "failed" and meta["failure"]["kind"] == "worker_lost"
            # the slot it freed went to no one: the next run waits queued, not failed
            _stays(api, app_id, queued, "queued", 3)
            assert _down(api)
        assert d.stop() == 0  # stopped while it waits: it stays queued, for the next daemon

        cluster.restart_scheduler()
        cluster.add_worker("back", slots=1)
        d = _daemon(cluster, tmp_path / "home")
        with d.client() as api:
            res = wait_run(api, app_id, queued, timeout=60)
            assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
            assert res["metadata"]["statistics"]["result"]["value"] == 3
            assert "[orch]" not in log_of(api, app_id, queued)  # one attempt, nothing to say
    finally:
        d.stop()
        cluster.stop()


def test_a_run_dropped_before_a_worker_accepted_it_waits_for_the_cluster_without_a_retry(
    tmp_path: Path,
) -> None:
    with _on_a_cluster_of_one(tmp_path) as (cluster, d), d.client() as api:
        app_id = _push_probe(api, tmp_path)
        running = start(api, app_id, {"input": {"sleep": 120}})
        facts_in_log(api, app_id, running, "pid")
        # past the slots: handed to the scheduler at once, it waits there for the
        # worker's only slot, so no worker accepts it
        config = {"queuing": {"disabled": True}}
        waiting = start(api, app_id, {"input": {"value": 5}, "configuration": config})
        canceled = start(api, app_id, {"input": {"value": 6}, "configuration": config})
        assert _status(api, app_id, waiting) == _status(api, app_id, canceled) == "running"
        time.sleep(1)  # submitted, and published

        cluster.kill_scheduler()
        meta = wait_run(api, app_id, running, timeout=30)["metadata"]
        assert meta["status_v2"] == "failed" and meta["failure"]["kind"] == "worker_lost"
        said = wait_for(
            lambda: "it waits for the cluster" in (t := log_of(api, app_id, waiting)) and t
        )
        assert "before the run reached a worker" in said and "no retry used" in said, said
        _stays(api, app_id, waiting, "running", 3)
        assert _down(api)
        # a cancel ends the wait at once
        wait_for(lambda: _said(api, app_id, canceled, "it waits for the cluster"))
        assert api.patch(f"/v1/applications/{app_id}/runs/{canceled}/cancel").is_success
        ended = wait_run(api, app_id, canceled, timeout=10)["metadata"]
        assert ended["status_v2"] == "canceled", ended

        cluster.restart_scheduler()
        cluster.add_worker("back", slots=1)
        res = wait_run(api, app_id, waiting, timeout=60)
        assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
        assert res["metadata"]["statistics"]["result"]["value"] == 5
        assert log_of(api, app_id, waiting).count("pid=") == 1  # it ran once
        assert "pid=" not in log_of(api, app_id, canceled)  # it never ran


def test_a_retry_with_no_worker_left_waits_for_one_and_so_does_the_run_staged_with_it(
    tmp_path: Path,
) -> None:
    with _on_a_cluster_of_one(tmp_path) as (cluster, d):
        with d.client() as api:
            app_id = _push_probe(api, tmp_path)
            sturdy_instance(api, app_id)
            sturdy = start(api, app_id, {"input": {"sleep": 3, "value": 7}}, "sturdy")
            facts_in_log(api, app_id, sturdy, "pid")
            queued = start(api, app_id, {"input": {"value": 8}})
            time.sleep(1)  # staged at the head of the queue (its files shipped)

            cluster.workers[0].kill()  # the only worker: none left to retry on
            wait_for(lambda: "starting it again" in log_of(api, app_id, sturdy), timeout=30)
            time.sleep(5)  # longer than a scatter waits for a worker (2 s here)
            assert _status(api, app_id, sturdy) == "running"
            assert _status(api, app_id, queued) == "queued"

            cluster.add_worker("back", slots=1)
            res = wait_run(api, app_id, sturdy, timeout=60)["metadata"]
            assert res["status_v2"] == "succeeded", res["error"]
            assert res["statistics"]["result"]["value"] == 7
            other = wait_run(api, app_id, queued, timeout=60)["metadata"]
            assert other["status_v2"] == "succeeded", other["error"]
            assert other["statistics"]["result"]["value"] == 8
        assert "waiting" in d.log() and "Traceback" not in d.log()
