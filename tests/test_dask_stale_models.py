"""A run the daemon has ended does not keep its model running on a Dask worker.

Dask cannot interrupt a task, and a task the scheduler forgets keeps its thread, so a model
whose run the daemon failed or canceled without hearing from its worker would run on: it
burns the worker's CPU and holds its ``orch`` slot (the next run waits behind it) for
nobody. It happens when the daemon's connection to the scheduler breaks while the
scheduler and its workers stay up: the daemon's client cancels its futures, the run fails
``worker_lost``, the daemon reconnects to the same scheduler, and the worker (here under a
nanny, as deployments run them) still runs the model. (A scheduler that is killed takes its
workers' models with it: a worker that loses its scheduler closes, and its nanny with it.)

Two real-process tests: the daemon's side (a relay between daemon and scheduler is cut; the
run fails and its model is killed once the daemon reaches the scheduler again; nothing else
is touched), and the worker's side without any daemon (a model whose claim the scheduler no
longer holds for its worker, withdrawn or gone, is stopped by the worker itself, as it
would be on a worker the daemon's kill never reached; a model that holds its claim runs to
its end).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest
from distributed import Client

from orchestrator.runs.backends.dask import claims
from orchestrator.runs.backends.dask.protocol import (
    TaskResult,
)
from orchestrator.runs.backends.dask.worker import read_logs, run_task
from tests.dask_cluster import (
    ClusterPool,
    DaskCluster,
    DaskWorker,
    _registered,
    _spawn,
    free_port,
)
from tests.dask_specs import inline_spec
from tests.helpers import Daemon, wait_for, wait_run
from tests.test_dask import PROBE, _push_probe, facts_in_log, start


def add_nanny_worker(cluster: DaskCluster, name: str, slots: int) -> DaskWorker:
    """A ``dask worker`` under a nanny (the default outside tests): the worker process is
    the nanny's child, as on a deployed cluster."""
    cache = cluster.root / f"cache-{name}"
    log = cluster.root / f"{name}-{len(cluster.workers)}.log"
    argv = [sys.executable, "-m", "distributed.cli.dask_worker", f"tcp://127.0.0.1:{cluster.port}"]
    argv += ["--host", "127.0.0.1", "--name", name, "--nthreads", str(slots)]
    argv += ["--resources", f"orch={slots}", "--nanny", "--no-dashboard"]
    argv += ["--local-directory", str(cluster.root / f"scratch-{name}")]
    worker = DaskWorker(name, cache, _spawn(argv, log, {"ORCH_WORKER_CACHE": str(cache)}), log)
    cluster.workers.append(worker)
    wait_for(lambda: _registered(worker), timeout=30)
    return worker


def nanny_cluster(root: Path) -> DaskCluster:
    c = DaskCluster.start(root, workers=0)
    try:
        add_nanny_worker(c, "nanny", slots=3)
    except BaseException:
        c.stop()
        raise
    return c


@pytest.fixture
def cluster(
    dask_clusters: ClusterPool, request: pytest.FixtureRequest
) -> Iterator[tuple[DaskCluster, DaskWorker]]:
    """A scheduler and one worker under a nanny, shared by this file's tests (none kills
    a process of it: the daemon's connection is cut, or claims are changed)."""
    with dask_clusters.lend(request, "nanny", nanny_cluster) as c:
        yield c, c.workers[0]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Relay:
    """A TCP relay between the daemon and the scheduler: cutting it breaks the daemon's
    connections (and refuses new ones for a while) while the scheduler and its workers,
    which talk to each other directly, see nothing but a client that went and came back."""

    def __init__(self, target: int) -> None:
        self.target, self.port = target, free_port()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._ends: set[asyncio.StreamWriter] = set()
        self._call(self._open())

    def cut(self, seconds: float) -> None:
        """Drop every connection through the relay; accept new ones after ``seconds``."""
        self._call(self._close())
        time.sleep(seconds)
        self._call(self._open())

    def close(self) -> None:
        self._call(self._close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def _call(self, work: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(work, self.loop).result(10)

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for end in list(self._ends):
            end.transport.abort()

    async def _relay(self, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            down_w.transport.abort()
            return
        self._ends |= {down_w, up_w}
        try:
            await asyncio.gather(_pump(down_r, up_w), _pump(up_r, down_w))
        finally:
            self._ends -= {down_w, up_w}


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    sink.transport.abort()  # one side closed: so does the other


@pytest.mark.parametrize("outage", [0.0, 3.0], ids=["blip", "outage"])
def test_a_run_failed_by_a_broken_daemon_connection_has_its_model_killed_on_the_worker(
    cluster: tuple[DaskCluster, DaskWorker], tmp_path: Path, outage: float
) -> None:
    """A blip: Dask's client reconnects by itself before the link sees it go, the run fails
    all the same. An outage: the link sees it, fails the run, and reconnects with backoff."""
    dask, nanny = cluster
    relay = Relay(dask.port)
    d = Daemon.start(tmp_path / "home", config=f'executor = "dask://127.0.0.1:{relay.port}"\n')
    try:
        with d.client() as api, Client(f"tcp://127.0.0.1:{dask.port}", timeout=10) as probe:
            app_id = _push_probe(api, tmp_path)
            stale = start(api, app_id, {"input": {"sleep": 120, "child": True}})
            facts = facts_in_log(api, app_id, stale, "pid", "child")
            pids = [int(facts["pid"]), int(facts["child"])]
            assert all(alive(pid) for pid in pids)

            relay.cut(outage)  # the daemon's side only: the scheduler and the worker stay
            failed = wait_run(api, app_id, stale, timeout=30)["metadata"]
            assert failed["status_v2"] == "failed", failed
            assert failed["failure"]["kind"] == "worker_lost", failed
            assert "the Dask scheduler dropped the run's task" in failed["error"]
            if outage:
                wait_for(lambda: "answers again (after" in d.log(), timeout=30)
                assert "lost the Dask scheduler" in d.log()
            assert nanny.process.poll() is None  # the worker outlived the daemon's outage

            # the failed run's model and its child are gone from the worker
            wait_for(lambda: not any(alive(pid) for pid in pids), timeout=15, interval=0.1)
            after = api.get(f"/v1/applications/{app_id}/runs/{stale}/metadata").json()
            assert {k: after["metadata"][k] for k in ("status_v2", "failure", "error")} == {
                k: failed[k] for k in ("status_v2", "failure", "error")
            }  # what the daemon decided stands

            # the scheduler keeps nothing of it (its record held its task for ever)
            def kept(dask_scheduler: Any = None) -> list[str]:
                return [str(k) for k in dask_scheduler.tasks if stale in str(k)]

            wait_for(lambda: not probe.run_on_scheduler(kept), timeout=10)
            assert not [n for n in probe.list_datasets() if str(n).endswith(stale)]

            # the worker's slots are free, and the next runs run as usual
            runs = [start(api, app_id, {"input": {"value": n, "sleep": 1}}) for n in (1, 2, 3)]
            for n, run_id in enumerate(runs, 1):
                done = wait_run(api, app_id, run_id, timeout=30)["metadata"]
                assert done["status_v2"] == "succeeded", done["error"]
                assert done["statistics"]["result"]["value"] == n
    finally:
        d.stop()
        relay.close()


def test_a_withdrawal_takes_the_claim_from_the_worker_that_holds_it() -> None:
    """What a worker's lease check reads after the daemon let go of a run it had claimed."""
    scheduler = SimpleNamespace(tasks={}, log_event=lambda topic, msg: None)
    assert claims.claim("k", "tcp://a", "run", dask_scheduler=scheduler) == "tcp://a"
    assert claims.withdraw("k", dask_scheduler=scheduler) == "tcp://a"  # its model is killed
    assert claims.lookup(["k", "other"], dask_scheduler=scheduler) == {"k": claims.WITHDRAWN}
    assert claims.claim("k", "tcp://b", "run", dask_scheduler=scheduler) == claims.WITHDRAWN
    assert claims.withdraw("k", dask_scheduler=scheduler) == claims.WITHDRAWN


def test_a_worker_stops_a_model_whose_claim_it_no_longer_holds(
    cluster: tuple[DaskCluster, DaskWorker], tmp_path: Path
) -> None:
    """No daemon: the tasks are submitted as it would, then their claims changed under them
    on the scheduler, which is all a worker the daemon's kill never reached still hears."""
    dask, nanny = cluster
    logged = nanny.log.stat().st_size  # what the worker logged before: other tests'
    bodies = {
        "run-kept": {"sleep": 8, "value": 7},  # outlives a claim check or more: unaffected
        "run-withdrawn": {"sleep": 120, "child": True},
        "run-forgotten": {"sleep": 120, "child": True},
    }
    with Client(f"tcp://127.0.0.1:{dask.port}", timeout=10) as client:
        tasks = {}
        for run_id, body in bodies.items():
            spec = inline_spec(
                tmp_path / run_id, PROBE, run_id, json.dumps(body).encode(), "stale-test"
            )
            task = client.submit(
                run_task, spec, key=spec.key, resources={"orch": 1}, pure=False, retries=0
            )
            tasks[run_id] = (spec.key, task)

        def pids() -> dict[str, list[int]]:
            """Each model's pid (and its child's), from its live log on the worker; none
            until every model has said them."""
            logs = next(iter(client.run(read_logs, dict.fromkeys(bodies, 0)).values()))
            trees: dict[str, list[int]] = {}
            for run_id, body in bodies.items():
                said = logs.get(run_id, b"").decode().split()
                words = dict(w.split("=", 1) for w in said if "=" in w)
                names = ("pid", "child") if body.get("child") else ("pid",)
                if not all(n in words for n in names):
                    return {}
                trees[run_id] = [int(words[n]) for n in names]
            return trees

        running = wait_for(pids, timeout=30, interval=0.1)
        assert all(alive(pid) for tree in running.values() for pid in tree)

        # the daemon withdrew one claim (the run is over) but its kill never reached this
        # worker; the other's claim is gone (a scheduler that came back empty has none)
        client.run_on_scheduler(claims.withdraw, tasks["run-withdrawn"][0])

        def forget(key: str, dask_scheduler: Any = None) -> None:
            del claims._claims(dask_scheduler)[key]

        client.run_on_scheduler(forget, tasks["run-forgotten"][0])
        stopped = running["run-withdrawn"] + running["run-forgotten"]
        wait_for(lambda: not any(alive(pid) for pid in stopped), timeout=15, interval=0.1)

        for run_id in ("run-withdrawn", "run-forgotten"):
            result = tasks[run_id][1].result(timeout=15)
            assert isinstance(result, TaskResult) and result.facts.canceled, result
        kept = tasks["run-kept"][1].result(timeout=30)
        assert isinstance(kept, TaskResult) and not kept.facts.canceled, kept
        assert kept.facts.exit_code == 0 and json.loads(kept.stdout)["statistics"]["result"] == {
            "value": 7
        }
        assert nanny.process.poll() is None
        log = nanny.log.read_bytes()[logged:].decode(errors="replace")
        assert "the daemon withdrew its claim" in log and "the scheduler has no claim" in log
