"""Crash recovery: a SIGKILLed daemon loses no record, and leaves no process behind."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import datetime
from pathlib import Path

import httpx
import psutil

from orchestrator.models import Limits
from orchestrator.runs.cgroups import RunCgroup, detect
from orchestrator.runs.proctree import MARKER_VAR
from tests.conftest import MakeDaemon
from tests.faults import killed_at
from tests.helpers import SAMPLES, create_app, push_dir, wait_for, wait_run
from tests.test_experiments import keep_input

INPUT = json.loads((SAMPLES / "knapsack" / "input.json").read_text())


def test_sigkill_during_running_and_queued_runs(make_daemon: MakeDaemon, tmp_path: Path) -> None:
    d = make_daemon(config="concurrency = 1\n")
    with d.client() as api:
        app_id = create_app(api)
        push_dir(api, app_id, SAMPLES / "knapsack", tmp_path)
        done = wait_run(api, app_id, _start(api, app_id, {"input": INPUT}))
        running = _start(api, app_id, {"input": INPUT, "options": {"sleep": "120"}})
        queued = [_start(api, app_id, {"input": INPUT}) for _ in range(3)]
        pid = wait_for(lambda: _pid(d.home, running))
        half = d.home / "runs" / queued[0]
        wait_for(lambda: (half / "work" / "main.py").is_symlink())  # next in line: staged
    d.kill()
    assert psutil.pid_exists(pid)  # the orphan outlived its daemon...
    # A queued run is spawned a moment before its claim is written: build the rest of
    # the state a daemon killed in that window leaves (a marked process, its output).
    (half / "stdout").write_text("partial")
    spawned = subprocess.Popen(
        ["sleep", "300"], env={**os.environ, MARKER_VAR: f"{queued[0]}.0123abcd"}
    )
    again = make_daemon(home=d.home)
    wait_for(lambda: not _running(pid), timeout=10)  # ...until recovery killed it
    wait_for(lambda: spawned.poll() is not None, timeout=10)
    with again.client() as api:
        lost = api.get(f"/v1/applications/{app_id}/runs/{running}/metadata").json()["metadata"]
        assert lost["status_v2"] == "failed"
        assert lost["error"] == "daemon stopped while the run was running"
        results = [wait_run(api, app_id, rid) for rid in queued]
        assert [r["metadata"]["status_v2"] for r in results] == ["succeeded"] * 3
        starts = [r["metadata"]["started_at"] for r in results]
        assert starts == sorted(starts)  # queued runs keep their order
        kept = api.get(f"/v1/applications/{app_id}/runs/{done['id']}").json()
        assert kept["output"]["solutions"][0]["value"] == 444  # finished output survives


def test_a_run_ended_by_recovery_records_how_long_it_ran(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    """It recorded ``duration: 0.0``: now its start until recovery ended it (an upper
    bound; the model here runs on, orphaned, until recovery kills it)."""
    d = make_daemon()
    with d.client() as api:
        app_id = create_app(api)
        push_dir(api, app_id, SAMPLES / "knapsack", tmp_path)
        running = _start(api, app_id, {"input": INPUT, "options": {"sleep": "120"}})
        wait_for(lambda: _pid(d.home, running))
        time.sleep(1.0)
    killed = time.time()
    d.kill()
    again = make_daemon(home=d.home)
    recovered = time.time()
    with again.client() as api:
        meta = api.get(f"/v1/applications/{app_id}/runs/{running}/metadata").json()["metadata"]
    assert meta["status_v2"] == "failed" and "daemon stopped" in meta["error"], meta
    started, ended = _seconds(meta["started_at"]), _seconds(meta["ended_at"])
    seconds = meta["duration"] / 1000
    assert killed - started <= seconds <= recovered - started, (meta, killed, recovered)
    assert abs(started + seconds - ended) < 0.05, meta  # until recovery's verdict


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def test_graceful_stop_ends_running_runs_and_keeps_queued(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    d = make_daemon(config="concurrency = 1\nshutdown_grace_seconds = 0.5\n")
    with d.client() as api:
        app_id = create_app(api)
        push_dir(api, app_id, SAMPLES / "knapsack", tmp_path)
        running = _start(api, app_id, {"input": INPUT, "options": {"sleep": "120"}})
        queued = _start(api, app_id, {"input": INPUT})
        wait_for(lambda: _pid(d.home, running))
    assert d.stop() == 0
    again = make_daemon(home=d.home)
    with again.client() as api:
        lost = api.get(f"/v1/applications/{app_id}/runs/{running}/metadata").json()["metadata"]
        assert lost["status_v2"] == "failed" and "daemon stopped" in lost["error"]
        assert wait_run(api, app_id, queued)["metadata"]["status_v2"] == "succeeded"


def test_a_run_spawned_but_never_written_is_killed_and_its_folder_removed(
    make_daemon: MakeDaemon,
) -> None:
    """A new run in a free slot is spawned before its row is written; a daemon killed
    in between leaves a folder and a process that no row names. That state is built
    here directly (SIGKILL cannot be aimed at a half-millisecond window): a marked
    process in the run's folder, plus, where cgroups work, a process inside a dead
    daemon's standby group. The next start kills both and keeps the other runs."""
    d = make_daemon()
    d.stop()
    folder = d.home / "runs" / "run-neverwritten"
    (folder / "work").mkdir(parents=True)
    marked = subprocess.Popen(
        ["sleep", "300"],
        env={**os.environ, MARKER_VAR: "run-neverwritten.0123abcd"},
        start_new_session=True,
    )
    grouped = _in_dead_standby_group()
    try:
        again = make_daemon(home=d.home)
        wait_for(lambda: marked.poll() is not None, timeout=10)
        assert not folder.exists()
        if grouped is not None:
            wait_for(lambda: grouped[0].poll() is not None, timeout=10)
            assert not grouped[1].exists()
        with again.client() as api:
            assert api.get("/healthz").status_code == 200
    finally:
        for proc in [marked, *([grouped[0]] if grouped else [])]:
            proc.kill()
            proc.wait()


def _in_dead_standby_group() -> tuple[subprocess.Popen[bytes], Path] | None:
    support = detect()
    if support is None:
        return None
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid no daemon holds any more
    group = RunCgroup.create(support, f"standby-{gone.pid}-1", Limits())
    proc = subprocess.Popen([*group.join_prefix(), "sleep", "300"], start_new_session=True)
    wait_for(lambda: str(proc.pid) in Path(group.memory_dir, "cgroup.procs").read_text())
    return proc, Path(group.memory_dir)


def _start(api: httpx.Client, app_id: str, body: dict) -> str:
    r = api.post(f"/v1/applications/{app_id}/runs", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["run_id"])


def _pid(home: Path, run_id: str) -> int | None:
    """The model's pid, once it has logged that it started (knapsack logs first)."""
    log = home / "runs" / run_id / "stderr"
    if not log.exists() or "solving knapsack" not in log.read_text():
        return None
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get("ORCH_RUN_ID") == run_id:
                return proc.pid
        except psutil.Error:
            continue
    return None


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_package_folder_removed_by_hand(make_daemon: MakeDaemon, tmp_path: Path) -> None:
    """Its runs fail before they start, naming the folder (not a bare FileNotFoundError);
    the next start unpacks it again from the stored package, and runs succeed again."""
    d = make_daemon()
    with d.client() as api:
        app_id = create_app(api)
        push_dir(api, app_id, SAMPLES / "knapsack", tmp_path)
        folder = d.home / "executables" / _executable_id(api, app_id)
        assert folder.is_dir()
        subprocess.run(["chmod", "-R", "u+w", str(folder)], check=True)
        subprocess.run(["rm", "-rf", str(folder)], check=True)
        failed = wait_run(api, app_id, _start(api, app_id, {"input": INPUT}))
        error = failed["metadata"]["error"]
        assert failed["metadata"]["status_v2"] == "failed"
        assert "could not start the model" in error and str(folder) in error, error
    d.stop()
    d = make_daemon(home=d.home)
    assert folder.is_dir()
    with d.client() as api:
        again = wait_run(api, app_id, _start(api, app_id, {"input": INPUT}))
        assert again["metadata"]["status_v2"] == "succeeded", again["metadata"]


def _executable_id(api: httpx.Client, app_id: str) -> str:
    r = api.get(f"/v1/applications/{app_id}")
    assert r.status_code == 200, r.text
    return str(r.json()["executable_id"])


def test_a_daemon_killed_between_an_experiment_and_its_runs_leaves_neither(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    """A batch experiment's row and its runs are one transaction. A daemon SIGKILLed as it
    inserts the runs (it kills itself there: ``faults.killed_at``) leaves no
    experiment, where it used to leave one that the next start settled as failed with no
    runs and no word of why; the same request then makes it whole."""
    home = tmp_path / "home"
    d = make_daemon(home=home)
    with d.client() as api:
        app_id = create_app(api)
        push_dir(api, app_id, SAMPLES / "knapsack", tmp_path)
        kept = keep_input(api, app_id, json.dumps(INPUT).encode(), "in")
        sets = f"/v1/applications/{app_id}/experiments/inputsets"
        assert api.post(sets, json={"id": "one", "name": "One", "input_ids": [kept]}).is_success
    d.stop()
    batch = f"/v1/applications/{app_id}/experiments/batch"
    body = {"id": "killed", "name": "K", "input_set_id": "one", "instance_ids": ["devint"]}
    with killed_at(home, "orchestrator.store.runs:RunRepo.insert_many") as api:
        api.post(batch, json=body)
    again = make_daemon(home=home)
    with again.client() as api:
        gone = api.get(f"{batch}/killed")
        assert gone.status_code == 404, gone.text  # not "failed" with 0 of 1 runs
        assert api.post(batch, json=body).status_code == 201
        meta = f"{batch}/killed/metadata"
        ended = wait_for(lambda: (m := api.get(meta).json())["status"] != "started" and m, 60)
        assert ended["status"] == "completed" and ended["number_of_runs"] == 1, ended


def test_a_daemon_killed_between_an_ensemble_run_and_its_children_leaves_neither(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    """An ensemble run, its record and its children are one transaction: a daemon killed
    as it inserts the children leaves no ensemble run, where it used to leave one with
    no children, failed at the next start as if the daemon had stopped under it."""
    home = tmp_path / "home"
    d = make_daemon(home=home)
    with d.client() as api:
        app_id = create_app(api)
        push_dir(api, app_id, SAMPLES / "knapsack", tmp_path)
        definition = {
            "id": "two", "name": "Two",
            "run_groups": [{"id": "g", "instance_id": "devint", "repetitions": 2}],
            "rules": [{"id": "best", "statistics_path": "$.result.value",
                       "objective": "maximize", "tolerance": {"value": 0, "type": "absolute"},
                       "index": 0}],
        }  # fmt: skip
        made = api.post(f"/v1/applications/{app_id}/ensembles", json=definition)
        assert made.status_code == 201, made.text
    d.stop()
    runs = f"/v1/applications/{app_id}/runs"
    body = {
        "input": INPUT,
        "configuration": {"run_type": {"type": "ensemble", "definition_id": "two"}},
    }
    with killed_at(home, "orchestrator.store.runs:RunRepo.insert_many") as api:
        api.post(runs, json=body)
    again = make_daemon(home=home)
    with again.client() as api:
        assert api.get(runs).json()["runs"] == []  # not a failed ensemble run, childless
        assert list((home / "runs").iterdir()) == []  # nor its folder
        run_id = api.post(runs, json=body).json()["run_id"]
        ended = wait_for(lambda: (m := api.get(f"{runs}/{run_id}/metadata").json())["metadata"][
            "status_v2"] in ("succeeded", "failed") and m, 60)  # fmt: skip
        assert ended["metadata"]["status_v2"] == "succeeded", ended
