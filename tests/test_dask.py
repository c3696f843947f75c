"""The dask backend end to end: a real ``dask scheduler``, real ``dask worker`` processes
and a real daemon started with ``--executor dask://...``, over HTTP.

Nothing is mocked. The workers run on this machine, so a test can see the model's
processes (their pids come from the run's live log) and which worker ran a run (its
``TMPDIR`` lies in that worker's cache folder). Tests that kill a worker get a cluster of
their own; the others share one per module, those that kill or stop a daemon of their own
too (it runs under a tenant of its own: its home).
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from distributed import Client

from orchestrator.runs.backends.dask import claims
from orchestrator.runs.backends.dask.protocol import task_key
from tests.dask_cluster import DaskCluster, DaskWorker, free_port
from tests.helpers import (
    Daemon,
    create_app,
    push_dir,
    wait_for,
    wait_run,
    with_constants,
    write_app,
)

PROBE = """\
import json, os, subprocess, sys, time
doc = json.load(sys.stdin)
print(f"pid={os.getpid()} tmp={os.environ['TMPDIR']}", file=sys.stderr, flush=True)
if doc.get("child"):
    child = subprocess.Popen(["sleep", "300"])
    print(f"child={child.pid}", file=sys.stderr, flush=True)
for n in range(doc.get("lines", 0)):
    print(f"line {n}", file=sys.stderr, flush=True)
    time.sleep(doc.get("every", 0))
start = time.time()
time.sleep(doc.get("sleep", 0))
stats = {"result": {"value": doc.get("value", 1)}, "run": {"duration": time.time() - start}}
json.dump({"statistics": stats, "tmp": os.environ["TMPDIR"], "start": start,
           "end": time.time()}, sys.stdout)
"""

MULTI_FILE = """\
import json, os, pathlib
names = sorted(os.listdir("inputs"))
out = pathlib.Path("outputs")
(out / "solutions").mkdir(parents=True, exist_ok=True)
(out / "solutions" / "names.txt").write_text("\\n".join(names))
(out / "statistics.json").write_text(json.dumps({"result": {"value": len(names)}}))
(out / "assets.json").write_text(json.dumps([{"name": "chart", "content": {"n": len(names)}}]))
"""


FOLDER_READER = """\
import json, os
own = os.path.realpath("inputs")
mine = {}
for folder, _, files in os.walk("inputs"):
    for name in files:
        path = os.path.join(folder, name)
        mine[os.path.relpath(path, "inputs")] = open(path).read()
marker = mine.get("marker.txt", "").encode() or None
leaked = []
for root in mine.get("roots.txt", "").split():
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.realpath(os.path.join(folder, name))
            try:
                with open(path, "rb") as fh:
                    if marker and marker in fh.read() and not path.startswith(own + "/"):
                        leaked.append(path)
            except OSError:
                pass
os.makedirs("outputs", exist_ok=True)
with open("outputs/statistics.json", "w") as fh:
    json.dump({"result": {"value": len(mine)}, "mine": mine, "leaked": leaked}, fh)
"""
MULTI_FILE_MANIFEST = (
    "type: python\nruntime: r\nfiles: [main.py]\n"
    "configuration:\n  content:\n    format: multi-file\n"
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    c = DaskCluster.start(tmp_path_factory.mktemp("cluster"))
    yield c
    c.stop()


@pytest.fixture(scope="module")
def dask_daemon(cluster: DaskCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon.start(
        tmp_path_factory.mktemp("dask-home"), config=f'executor = "{cluster.executor}"\n'
    )
    yield d
    d.stop()


@pytest.fixture
def api(dask_daemon: Daemon) -> Iterator[httpx.Client]:
    with dask_daemon.client() as client:
        yield client


@pytest.fixture(scope="module")
def probe(dask_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    with dask_daemon.client() as api:
        return _push_probe(api, tmp_path_factory.mktemp("probe"))


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[DaskCluster]:
    """A cluster a test may damage (kill a worker)."""
    c = DaskCluster.start(tmp_path / "cluster")
    yield c
    c.stop()


@pytest.fixture
def daemon_on(cluster: DaskCluster) -> Iterator[Callable[..., Daemon]]:
    """Daemons of a test's own (killed, stopped, started again on their home) on the
    module's cluster. Each still running at the end is stopped, which ends its runs on the
    cluster, and the cluster must then be as the other tests of this module need it."""
    started: list[Daemon] = []

    def start(home: Path, extra: str = "") -> Daemon:
        started.append(_daemon_on(cluster, home, extra))
        return started[-1]

    yield start
    for d in started:
        if d.process.poll() is None:
            d.stop()
    assert cluster.idle(), f"a test left the module's cluster busy or damaged\n{cluster.logs()}"


def _push_probe(api: httpx.Client, tmp: Path) -> str:
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp / "probe", PROBE), tmp)
    return app_id


def start(api: httpx.Client, app_id: str, body: dict[str, Any], instance: str = "") -> str:
    params = {"instance_id": instance} if instance else {}
    r = api.post(f"/v1/applications/{app_id}/runs", json=body, params=params)
    assert r.status_code == 201, r.text
    return str(r.json()["run_id"])


def log_of(api: httpx.Client, app_id: str, run_id: str) -> str:
    return str(api.get(f"/v1/applications/{app_id}/runs/{run_id}/logs").json()["log"])


def facts_in_log(api: httpx.Client, app_id: str, run_id: str, *names: str) -> dict[str, str]:
    """Wait until the run's live log shows ``name=value`` for every name; return them."""

    def found() -> dict[str, str] | None:
        words = dict(w.split("=", 1) for w in log_of(api, app_id, run_id).split() if "=" in w)
        return words if all(n in words for n in names) else None

    return wait_for(found, timeout=30, interval=0.05)


def worker_of(cluster: DaskCluster, tmp: str) -> DaskWorker:
    """The worker whose cache holds this run folder."""
    return next(w for w in cluster.workers if tmp.startswith(str(w.cache)))


def orch(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "orchestrator", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=90)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# -- runs on the cluster ----------------------------------------------------------------


def test_runs_execute_on_the_workers_and_come_back_like_local_ones(
    api: httpx.Client, probe: str, cluster: DaskCluster
) -> None:
    health = api.get("/healthz").json()["backend"]
    assert health["name"] == "dask" and health["slots"] == 4 and health["workers"] == 2
    assert health["scheduler"] == cluster.executor.replace("dask://", "tcp://")
    runs = [start(api, probe, {"input": {"sleep": 0.5, "value": n}}) for n in range(4)]
    results = [wait_run(api, probe, r) for r in runs]
    assert [r["metadata"]["status_v2"] for r in results] == ["succeeded"] * 4
    assert [r["metadata"]["statistics"]["result"]["value"] for r in results] == [0, 1, 2, 3]
    assert all(r["metadata"]["peak_memory_mb"] > 0 for r in results)
    tmps = [r["output"]["tmp"] for r in results]
    assert {worker_of(cluster, t).name for t in tmps} == {"w0", "w1"}  # both workers ran some
    assert "pid=" in log_of(api, probe, runs[0])
    exe = api.get(f"/v1/applications/{probe}/executable").json()["id"]
    for worker in cluster.workers:  # each worker unpacked the package once, by its hash
        assert (worker.cache / "executables" / exe / "main.py").is_file()


def test_a_worker_never_runs_more_than_its_slots(
    api: httpx.Client, probe: str, cluster: DaskCluster
) -> None:
    runs = [start(api, probe, {"input": {"sleep": 0.6}}) for _ in range(10)]
    outputs = [wait_run(api, probe, r)["output"] for r in runs]
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for out in outputs:
        by_worker.setdefault(worker_of(cluster, out["tmp"]).name, []).append(
            (out["start"], out["end"])
        )
    peaks = {name: _peak(spans) for name, spans in by_worker.items()}
    assert all(peak <= 2 for peak in peaks.values()), peaks
    everything = [span for spans in by_worker.values() for span in spans]
    assert 3 <= _peak(everything) <= 4, peaks  # the cluster's 4 slots were used


def _peak(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


def test_logs_reach_the_daemon_while_the_run_runs(api: httpx.Client, probe: str) -> None:
    run_id = start(api, probe, {"input": {"lines": 8, "every": 0.4}})
    url = f"/v1/applications/{probe}/runs/{run_id}/logs/live"

    def two_lines_while_running() -> bool:
        page = api.get(url, params={"since": "0"}).json()
        lines = [i["log"] for i in page["items"]]
        return page["status_v2"] == "running" and "line 1" in lines

    wait_for(two_lines_while_running, timeout=30, interval=0.1)
    assert wait_run(api, probe, run_id)["metadata"]["status_v2"] == "succeeded"
    lines = log_of(api, probe, run_id).splitlines()
    assert lines[1:] == [f"line {n}" for n in range(8)]  # whole, in order, once


def test_cancel_kills_the_process_tree_on_the_worker(api: httpx.Client, probe: str) -> None:
    run_id = start(api, probe, {"input": {"child": True, "sleep": 120}})
    facts = facts_in_log(api, probe, run_id, "pid", "child")
    pids = [int(facts["pid"]), int(facts["child"])]
    assert not any(gone(p) for p in pids)
    r = api.patch(f"/v1/applications/{probe}/runs/{run_id}/cancel")
    assert r.status_code == 200, r.text
    assert wait_run(api, probe, run_id)["metadata"]["status_v2"] == "canceled"
    wait_for(lambda: all(gone(p) for p in pids), timeout=10)


def _upload(api: httpx.Client, app_id: str, files: dict[str, bytes]) -> str:
    """A folder input, uploaded as the SDK does (a tar.gz); returns its upload id."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    up = api.post(f"/v1/applications/{app_id}/runs/uploadurl").json()
    httpx.put(up["upload_url"], content=buf.getvalue())
    return str(up["upload_id"])


def test_multi_file_outputs_statistics_and_assets_come_back(
    api: httpx.Client, tmp_path: Path
) -> None:
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp_path / "mf", MULTI_FILE, MULTI_FILE_MANIFEST), tmp_path)
    upload = _upload(api, app_id, {name: b"x" for name in ("a.csv", "b.json", "deep/c.txt")})
    res = wait_run(api, app_id, start(api, app_id, {"upload_id": upload}))
    assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
    assert res["metadata"]["statistics"] == {"result": {"value": 3}}
    with tarfile.open(fileobj=io.BytesIO(httpx.get(res["output"]["url"]).content)) as tar:
        names = tar.extractfile("solutions/names.txt")
        assert names is not None and names.read() == b"a.csv\nb.json\ndeep"
    assets = api.get(f"/v1/applications/{app_id}/runs/{res['id']}/assets").json()
    (chart,) = [a for a in assets["items"] if a["name"] == "chart"]
    meta = api.get(f"/v1/applications/{app_id}/runs/{res['id']}/assets/{chart['id']}").json()
    assert httpx.get(meta["download_url"]).json() == {"n": 3}


def test_a_folder_input_is_read_by_its_model_and_by_no_other(
    api: httpx.Client, tmp_path: Path, cluster: DaskCluster
) -> None:
    """The model reads its folder input's files (not only their names: the cache unpacks
    them private to the worker, and the model runs under a uid of its own), and a later
    run, looking through every worker's cache, finds nothing of the first run's input."""
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp_path / "rd", FOLDER_READER, MULTI_FILE_MANIFEST), tmp_path)
    secret = f"only-for-run-one-{os.getpid()}"
    first = {"a.txt": b"hello", "deep/b.txt": b"deep", "marker.txt": secret.encode()}
    res = wait_run(api, app_id, start(api, app_id, {"upload_id": _upload(api, app_id, first)}))
    meta = res["metadata"]
    assert meta["status_v2"] == "succeeded", meta["error"]
    assert meta["statistics"]["mine"] == {
        "a.txt": "hello",
        "deep/b.txt": "deep",
        "marker.txt": secret,
    }
    roots = " ".join(str(w.cache / part) for w in cluster.workers for part in ("inputs", "runs"))
    other = {"roots.txt": roots.encode(), "marker.txt": secret.encode()}
    res = wait_run(api, app_id, start(api, app_id, {"upload_id": _upload(api, app_id, other)}))
    meta = res["metadata"]
    assert meta["status_v2"] == "succeeded", meta["error"]
    assert meta["statistics"]["leaked"] == []


ENV_MAIN = (
    "import json, sys, six\nprint(json.dumps({'six': six.__version__, 'prefix': sys.prefix}))\n"
)
ENV_MANIFEST = (
    "type: python\nruntime: r\nfiles: [main.py, requirements.txt]\n"
    "python:\n  pip-requirements: requirements.txt\n"
)


def test_python_environments_are_built_on_the_workers(
    api: httpx.Client, tmp_path: Path, cluster: DaskCluster
) -> None:
    runs = {}
    for requirement in ("six==1.16.0", "this-package-does-not-exist-orch==0.0.1"):
        folder = write_app(tmp_path / requirement[:6], ENV_MAIN, ENV_MANIFEST)
        (folder / "requirements.txt").write_text(requirement + "\n")
        app_id = create_app(api)
        push_dir(api, app_id, folder, tmp_path)
        runs[requirement] = (app_id, start(api, app_id, {"input": {}}))
    app_id, run_id = runs["six==1.16.0"]
    good = wait_run(api, app_id, run_id, timeout=300)
    assert good["metadata"]["status_v2"] == "succeeded", good["metadata"]["error"]
    assert good["output"]["six"] == "1.16.0"
    prefix = good["output"]["prefix"]
    assert any(prefix.startswith(str(w.cache / "envs")) for w in cluster.workers), prefix
    app_id, run_id = runs["this-package-does-not-exist-orch==0.0.1"]
    bad = wait_run(api, app_id, run_id, timeout=300)["metadata"]
    assert bad["status_v2"] == "failed" and bad["failure"]["kind"] == "environment"
    assert "this-package-does-not-exist-orch" in bad["error"] and "on worker tcp://" in bad["error"]


def test_an_app_without_requirements_runs_in_the_workers_shared_environment(
    api: httpx.Client, tmp_path: Path, cluster: DaskCluster
) -> None:
    main = "import json, sys, nextmv\nprint(json.dumps({'prefix': sys.prefix}))\n"
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp_path / "shared", main), tmp_path)
    res = wait_run(api, app_id, start(api, app_id, {"input": {}}), timeout=120)
    assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
    prefix = res["output"]["prefix"]
    assert any(prefix.startswith(str(w.cache / "envs")) for w in cluster.workers), prefix


def test_an_experiment_runs_on_the_cluster(api: httpx.Client, probe: str) -> None:
    api.post(f"/v1/applications/{probe}/versions", json={"id": "v1"})
    for inst in ("one", "two"):
        body = {"id": inst, "version_id": "v1"}
        assert api.post(f"/v1/applications/{probe}/instances", json=body).status_code == 201
    ids = []
    for n in range(3):
        up = api.post(f"/v1/applications/{probe}/runs/uploadurl").json()
        httpx.put(up["upload_url"], content=json.dumps({"value": n}).encode())
        body = {"name": f"case-{n}", "upload_id": up["upload_id"]}
        ids.append(api.post(f"/v1/applications/{probe}/inputs", json=body).json()["id"])
    base = f"/v1/applications/{probe}/experiments"
    api.post(f"{base}/inputsets", json={"id": "three", "name": "Three", "input_ids": ids})
    body = {"id": "on-dask", "name": "On dask", "input_set_id": "three"}
    body |= {"instance_ids": ["one", "two"], "baseline": "one"}
    assert api.post(f"{base}/batch", json=body).status_code == 201
    meta = wait_for(
        lambda: (
            (m := api.get(f"{base}/batch/on-dask/metadata").json())["status"] != "started" and m
        ),
        timeout=90,
        interval=0.1,
    )
    assert meta["status"] == "completed" and meta["number_of_runs"] == 6
    runs = api.get(f"{base}/batch/on-dask/runs").json()["runs"]
    assert {r["status_v2"] for r in runs} == {"succeeded"}
    summary = json.dumps(api.get(f"{base}/batch/on-dask/summary").json())
    assert "one" in summary and "two" in summary and "result.value" in summary


def test_daemon_status_names_the_backend_its_workers_and_their_protections(
    dask_daemon: Daemon, api: httpx.Client, cluster: DaskCluster
) -> None:
    def described() -> dict[str, Any] | None:  # each worker describes its sandbox as it joins
        health = api.get("/healthz").json()
        workers = health["backend"]["cluster"].values()
        return health if all("protections" in w for w in workers) else None

    health = wait_for(described, timeout=30)
    isolation = health["isolation"]
    assert "no-new-privs" in isolation["protections"] and isolation["workers_differing"] == {}
    workers = health["backend"]["cluster"].values()
    assert all(w["protections"] == isolation["protections"] for w in workers)
    done = orch("daemon", "status", "--json", "--home", str(dask_daemon.home))
    status = json.loads(done.stdout)
    assert status["executor"] == "dask" and status["workers"] == 2 and status["slots"] == 4
    assert status["isolation"] == ", ".join(isolation["protections"])


# -- losing parts of the system -----------------------------------------------------------


def _daemon_on(cluster: DaskCluster, home: Path, extra: str = "") -> Daemon:
    return Daemon.start(home, config=f'executor = "{cluster.executor}"\n{extra}')


def test_a_worker_lost_mid_run_fails_the_run_and_its_orphans_are_swept(
    own_cluster: DaskCluster, tmp_path: Path
) -> None:
    d = _daemon_on(own_cluster, tmp_path / "home")
    try:
        with d.client() as api:
            app_id = _push_probe(api, tmp_path)
            run_id = start(api, app_id, {"input": {"child": True, "sleep": 120}})
            facts = facts_in_log(api, app_id, run_id, "pid", "child", "tmp")
            victim = worker_of(own_cluster, facts["tmp"])
            address = _address_of(d, victim)
            victim.kill()
            res = wait_run(api, app_id, run_id, timeout=60)
            meta = res["metadata"]
            assert meta["status_v2"] == "failed" and meta["failure"]["kind"] == "worker_lost"
            assert address in meta["error"] and "was lost" in meta["error"]
            orphans = [int(facts["pid"]), int(facts["child"])]
            assert not any(gone(p) for p in orphans)  # nobody supervises them any more...
            own_cluster.add_worker("again", cache=victim.cache)
            wait_for(lambda: all(gone(p) for p in orphans), timeout=30)  # ...until swept
            after = wait_run(api, app_id, start(api, app_id, {"input": {}}))
            assert after["metadata"]["status_v2"] == "succeeded"
    finally:
        d.stop()


def _address_of(d: Daemon, worker: DaskWorker) -> str:
    with d.client() as api:
        cluster = api.get("/healthz").json()["backend"]["cluster"]
    return next(addr for addr, w in cluster.items() if w["name"] == worker.name)


def sturdy_instance(api: httpx.Client, app_id: str) -> None:
    """Instance ``sturdy`` of version ``v1`` (made here), whose runs get one retry."""
    api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"})
    body = {"id": "sturdy", "version_id": "v1", "configuration": {"limits": {"retries": 1}}}
    assert api.post(f"/v1/applications/{app_id}/instances", json=body).status_code == 201


def test_a_worker_lost_mid_run_retries_it_once_when_the_instance_allows(
    own_cluster: DaskCluster, tmp_path: Path
) -> None:
    d = _daemon_on(own_cluster, tmp_path / "home")
    try:
        with d.client() as api:
            app_id = _push_probe(api, tmp_path)
            sturdy_instance(api, app_id)
            too_many = {"input": {}, "configuration": {"limits": {"retries": 2}}}
            r = api.post(f"/v1/applications/{app_id}/runs?instance_id=sturdy", json=too_many)
            assert r.status_code == 400 and "retries" in r.json()["error"]
            run_id = start(api, app_id, {"input": {"sleep": 3, "value": 7}}, "sturdy")
            facts = facts_in_log(api, app_id, run_id, "tmp")
            victim = worker_of(own_cluster, facts["tmp"])
            victim.kill()
            res = wait_run(api, app_id, run_id, timeout=60)
            assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
            assert res["metadata"]["statistics"]["result"]["value"] == 7
            assert worker_of(own_cluster, res["output"]["tmp"]) is not victim
            log = log_of(api, app_id, run_id)
            assert "was lost while it ran this run; starting it again" in log
            assert log.count("pid=") == 2  # both attempts' logs, the note between them

            # no claim of the run names a worker once it ended: a worker reported lost that
            # lived on would keep running attempt 1 under it (``test_dask_failover_keys``)
            def claims_of_run(dask_scheduler: Any = None) -> dict[str, str]:
                keys = [task_key(run_id, n) for n in (1, 2)]
                return claims.lookup(keys, dask_scheduler=dask_scheduler)

            with Client(own_cluster.executor.replace("dask://", "tcp://"), timeout=10) as probe:
                withdrawn = {task_key(run_id, n): claims.WITHDRAWN for n in (1, 2)}
                wait_for(lambda: probe.run_on_scheduler(claims_of_run) == withdrawn, timeout=15)
    finally:
        d.stop()


def test_a_restarted_daemon_reattaches_to_runs_on_the_cluster(
    daemon_on: Callable[..., Daemon], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    d = daemon_on(home)
    with d.client() as api:
        app_id = _push_probe(api, tmp_path)
        slow = start(api, app_id, {"input": {"lines": 6, "every": 0.5, "value": 5}})
        facts_in_log(api, app_id, slow, "pid")
    d.kill()  # SIGKILL: no chance to stop anything
    again = daemon_on(home)
    try:
        with again.client() as api:
            res = wait_run(api, app_id, slow, timeout=60)
            assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
            assert res["metadata"]["statistics"]["result"]["value"] == 5
            assert log_of(api, app_id, slow).splitlines()[1:] == [f"line {n}" for n in range(6)]
    finally:
        again.stop()


def test_a_stopped_daemon_ends_its_runs_and_kills_them_on_the_cluster(
    daemon_on: Callable[..., Daemon], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    d = daemon_on(home, "shutdown_grace_seconds = 0.5\n")
    with d.client() as api:
        app_id = _push_probe(api, tmp_path)
        run_id = start(api, app_id, {"input": {"child": True, "sleep": 120}})
        facts = facts_in_log(api, app_id, run_id, "pid", "child")
    assert d.stop() == 0
    wait_for(lambda: gone(int(facts["pid"])) and gone(int(facts["child"])), timeout=15)
    again = daemon_on(home)
    try:
        with again.client() as api:
            meta = api.get(f"/v1/applications/{app_id}/runs/{run_id}/metadata").json()
            assert meta["metadata"]["status_v2"] == "failed"
            assert meta["metadata"]["failure"]["kind"] == "daemon_stopped"
    finally:
        again.stop()


# -- choosing the backend -----------------------------------------------------------------


def test_a_bad_executor_is_refused_before_the_daemon_starts(tmp_path: Path) -> None:
    done = orch("daemon", "start", "--home", str(tmp_path), "--executor", "dask:/nowhere")
    assert done.returncode != 0 and "dask://HOST:PORT" in done.stderr
    assert not (tmp_path / "daemon.json").exists()


def test_an_unreachable_scheduler_stops_the_daemon_with_a_clear_error(tmp_path: Path) -> None:
    started = time.monotonic()
    nobody = f"dask://127.0.0.1:{free_port()}"
    done = orch("daemon", "run", "--home", str(tmp_path), "--executor", nobody)
    assert done.returncode != 0 and "cannot reach the Dask scheduler" in done.stderr
    assert time.monotonic() - started < 60


def daemon_run(
    home: Path, executor: str, launcher: Sequence[str] = ("-m", "orchestrator")
) -> subprocess.Popen[str]:
    argv = [sys.executable, *launcher, "daemon", "run", "--home", str(home)]
    argv += ["--executor", executor, "--port", "0"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ended_within(process: subprocess.Popen[str], seconds: float) -> tuple[int, str]:
    """(exit code, stderr) of a process that must end in time; killed if it does not."""
    try:
        _, err = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError(f"still running after {seconds} s") from None
    return process.returncode, err


def test_a_workers_address_is_refused_in_one_line(
    dask_daemon: Daemon, api: httpx.Client, tmp_path: Path
) -> None:
    worker = next(iter(api.get("/healthz").json()["backend"]["cluster"]))
    code, err = ended_within(daemon_run(tmp_path, worker.replace("tcp://", "dask://")), 30)
    assert code != 0 and err.strip().count("\n") == 0, err
    assert f"{worker} is a Dask worker, not the scheduler" in err


def test_an_address_that_is_no_scheduler_is_refused_and_leaves_no_process(
    tmp_path: Path,
) -> None:
    """Something that accepts TCP but never speaks Dask (a dashboard, any HTTP server):
    ``daemon run`` says so within seconds; ``daemon start`` kills a daemon that does not
    answer in time (whatever the cause), so nothing holds the home afterwards. The
    handshake's wait is 1 s instead of 5 here: the same refusal, sooner."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts connections; nobody ever answers them
        executor = f"dask://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        shorter = with_constants({"orchestrator.runs.backends.dask.link.HANDSHAKE_SECONDS": 1})
        running = daemon_run(tmp_path / "run", executor, shorter)
        try:
            home = tmp_path / "start"
            argv = ["daemon", "start", "--home", str(home), "--port", "0", "--timeout", "1"]
            done = orch(*argv, "--executor", executor)
            leftovers = [
                p
                for p in psutil.process_iter(["cmdline"])
                if str(home) in (p.info["cmdline"] or [])
            ]
            for process in leftovers:
                process.kill()
            assert leftovers == [], "the daemon that did not answer was left running"
            assert "did not answer within 1 s and was stopped" in done.stderr
            assert done.returncode != 0
            code, err = ended_within(running, 30)
            assert (
                code != 0 and "not a Dask scheduler (no answer to the handshake within 1 s" in err
            ), err
            assert err.strip().count("\n") == 0 and time.monotonic() - started < 20, err
        finally:
            running.kill()
            running.wait()


def test_the_default_install_never_imports_dask() -> None:
    code = (
        "import sys; import orchestrator.wiring, orchestrator.cli.main, orchestrator.daemon; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr
