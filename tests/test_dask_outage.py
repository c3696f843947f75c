"""A Dask scheduler that goes away and comes back: the daemon waits it out.

A real scheduler is SIGKILLed under a real daemon (its workers go with it) and a new
one started at the same address: the run that was running fails, as its task went with
the scheduler; meanwhile ``/healthz`` and ``orch daemon status`` show the outage (no
worker, no slot) and a new run waits queued instead of failing; once the scheduler is
back, that run and new ones run. The daemon says so in its log once per change, not
every second.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from tests.dask_cluster import DaskCluster
from tests.helpers import Daemon, wait_for, wait_run, with_constants
from tests.test_dask import _push_probe, facts_in_log, orch, start


def _backend(api: httpx.Client) -> dict[str, Any]:
    return dict(api.get("/healthz").json()["backend"])


def test_a_lost_scheduler_is_waited_out_and_runs_start_again_once_it_is_back(
    tmp_path: Path,
) -> None:
    cluster = DaskCluster.start(tmp_path / "cluster", workers=1, slots=1)
    # the link's backoff doubles up to 2 s instead of 5: the scheduler, once back, is
    # found sooner (the same code path; each change is still logged once)
    backoff = with_constants({"orchestrator.runs.backends.dask.link.BACKOFF_MAX_SECONDS": 2})
    d = Daemon.start(
        tmp_path / "home", config=f'executor = "{cluster.executor}"\n', launcher=backoff
    )
    try:
        with d.client() as api:
            app_id = _push_probe(api, tmp_path)
            running = start(api, app_id, {"input": {"sleep": 120}})
            facts_in_log(api, app_id, running, "pid")
            cluster.kill_scheduler()
            meta = wait_run(api, app_id, running, timeout=30)["metadata"]
            assert meta["status_v2"] == "failed" and meta["failure"]["kind"] == "worker_lost"
            assert "the Dask scheduler dropped the run's task" in meta["error"]

            down = wait_for(lambda: (b := _backend(api))["slots"] == 0 and b, timeout=10)
            assert down["workers"] == 0 and down.get("connected") is False and down["unreachable"]
            queued = start(api, app_id, {"input": {"value": 3}})
            wait_for(lambda: "no Dask scheduler to reconnect to yet" in d.log(), timeout=10)
            time.sleep(2)  # more attempts, none logged again
            status = json.loads(orch("daemon", "status", "--json", "--home", str(d.home)).stdout)
            assert status["slots"] == 0 and status["workers"] == 0
            assert status["scheduler_unreachable"], status
            assert api.get("/healthz").json()["status"] == "degraded"
            assert status["isolation"].startswith("unknown: no worker reachable"), status
            meta = api.get(f"/v1/applications/{app_id}/runs/{queued}/metadata").json()
            assert meta["metadata"]["status_v2"] == "queued"  # waits: not dispatched, failed

            cluster.restart_scheduler()
            cluster.add_worker("back", slots=1)
            res = wait_run(api, app_id, queued, timeout=60)
            assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
            assert res["metadata"]["statistics"]["result"]["value"] == 3
            again = wait_run(api, app_id, start(api, app_id, {"input": {}}), timeout=60)
            assert again["metadata"]["status_v2"] == "succeeded", again["metadata"]["error"]
            up = _backend(api)
            assert up["connected"] is True and up["slots"] == 1 and "unreachable" not in up
            assert api.get("/healthz").json()["status"] == "ok"
        log = d.log()
        assert log.count("lost the Dask scheduler") == 1, log
        assert log.count("no Dask scheduler to reconnect to yet") == 1, log
        assert log.count("answers again (after") == 1, log
        assert "cannot read the workers" not in log and "did not answer" not in log, log
    finally:
        d.stop()
        cluster.stop()
