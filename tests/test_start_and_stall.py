"""A daemon starts fast with a big queue, says where a slow start was, a stall does not fail
a finished run, and a start during a stop ends with a daemon (or says why not).

Found by a crash walk: ``orch daemon start`` took 10.6 s on a home whose killed daemon left
12,000 queued runs and failed at its 20 s for 39,000 (recovery probed and cleaned every
queued run, and read each one whole twice), leaving nothing in daemon.log; a ``sleep 2``
run with an 8 s timeout ended "timeout of 8 s exceeded: ran 15.4 s" after a 15 s SIGSTOP
of the daemon, though it had exited 0 with its output; and ``orch daemon start`` during
a ``daemon stop`` said "already running" (exit 0), and then no daemon ran.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tests.conftest import MakeDaemon
from tests.faults import orch
from tests.helpers import ROOT, create_app, push_dir, wait_for, wait_run, write_app
from tests.test_experiment_crash import ONE_SLOT, _experiment

QUEUED = 30_000
QUEUE_CPU_SECONDS = 2.5
"""The CPU a daemon spends to start on a home left with 30,000 queued runs, beyond what
it spends on an empty home: measured 1.5 s on the 2-core VM at a load average of 6 to 9
(nearly all of it reading the queued runs, which the scheduler holds, once). The old
start, which also probed and cleaned each queued run and read them all whole twice: 3.8 s,
and 4.6-20 s of wall time (once it failed ``orch daemon start``'s 20 s). CPU, not wall
time: on this shared machine a start's wall time varied threefold with the load."""


def _killed_with_a_queue(make_daemon: MakeDaemon, tmp_path: Path, runs: int) -> Path:
    """A home whose daemon was killed (SIGKILL) with ``runs`` runs of an experiment of a
    fast model queued behind its one slot; returns the home."""
    home = tmp_path / "home"
    d = make_daemon(config=ONE_SLOT, home=home)
    with d.client() as api:
        api.timeout = httpx.Timeout(120)
        _experiment(api, tmp_path, "big", repetitions=runs)
    d.kill()
    return home


def _start_cpu(home: Path) -> tuple[float, str]:
    """``orch daemon start`` on ``home`` (its default 20 s to answer): the CPU seconds its
    daemon spent until it answered, and its URL."""
    if not home.exists():
        home.mkdir(parents=True)
        (home / "config.toml").write_text(ONE_SLOT)
    started = orch("daemon", "start", "--home", str(home), "--port", "0")
    assert started.returncode == 0, started.stderr
    pid = json.loads((home / "daemon.json").read_text())["pid"]
    cpu = psutil.Process(pid).cpu_times()
    return cpu.user + cpu.system, started.stdout.strip()


def test_a_home_left_with_30000_queued_runs_starts_without_working_on_each(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    home = _killed_with_a_queue(make_daemon, tmp_path, QUEUED)
    empty = tmp_path / "empty"
    try:
        base, _ = _start_cpu(empty)
        cpu, url = _start_cpu(home)
        assert cpu - base < QUEUE_CPU_SECONDS, (cpu, base)
        queued = httpx.get(f"{url}/healthz").json()["runs"]["queued"]
        assert queued > QUEUED - 1_000, queued  # the queue was handed back whole
    finally:
        for h in (empty, home):
            assert orch("daemon", "stop", "--home", str(h)).returncode == 0


_STALLED_RECOVERY = """\
import asyncio, os
if os.environ.get("ORCH_TEST_STALL_RECOVERY"):
    import orchestrator.runs.recovery as recovery

    async def stalled(*args, **kwargs):
        await asyncio.sleep(600)

    recovery.recover = stalled
"""


def test_a_start_that_times_out_says_where_it_was(tmp_path: Path) -> None:
    """A daemon whose recovery does not end (``sitecustomize`` stalls it in the daemon
    the CLI spawns): the start gives up at its ``--timeout`` and says, on stderr and in
    daemon.log, which step the daemon was in; no line at all was written before."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_STALLED_RECOVERY)
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": f"{hook}:{ROOT}", "ORCH_TEST_STALL_RECOVERY": "1"}
    argv = ["daemon", "start", "--home", str(home), "--port", "0", "--timeout", "4"]
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", *argv],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
    )  # fmt: skip
    assert done.returncode == 1, done
    where = "while recovering the runs a stopped daemon left"
    assert "did not answer within 4 s and was stopped" in done.stderr, done.stderr
    assert where in done.stderr and "--timeout" in done.stderr, done.stderr
    log = (home / "daemon.log").read_text()
    assert "start-up stopped by SIGTERM after" in log and where in log, log


SLEEP_THEN_ANSWER = "#!/bin/sh\nsleep 1\ncat\n"


def test_a_run_that_ended_in_time_during_a_daemon_stall_is_not_a_timeout(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    """The model ends after 1 s of its 3 s while the daemon is stopped (SIGSTOP) for 5 s:
    the deadline's timer and the exit are seen in the same pass, and the timer won."""
    d = make_daemon()
    with d.client() as api:
        app_id = create_app(api)
        push_dir(
            api, app_id, write_app(tmp_path / "app", SLEEP_THEN_ANSWER, kind="binary"), tmp_path
        )
        body = {"input": {"n": 1}, "configuration": {"limits": {"timeout_seconds": 3}}}
        made = api.post(f"/v1/applications/{app_id}/runs", json=body)
        assert made.status_code == 201, made.text
        run_id = made.json()["run_id"]
        meta = f"/v1/applications/{app_id}/runs/{run_id}/metadata"
        wait_for(lambda: api.get(meta).json()["metadata"]["status_v2"] == "running")
        os.kill(d.process.pid, signal.SIGSTOP)
        try:
            time.sleep(5)
        finally:
            os.kill(d.process.pid, signal.SIGCONT)
        done = wait_run(api, app_id, run_id)
    assert done["metadata"]["status_v2"] == "succeeded", done["metadata"]
    assert done["output"] == {"n": 1}


SLEEPER = "#!/bin/sh\nsleep 30\n"


def test_a_start_during_a_stop_ends_with_a_daemon_running(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    """A stop that takes its grace (a run is running): a start meanwhile waits for the
    old daemon to end and starts a new one, where it said "already running" (exit 0) of
    the daemon about to end."""
    home = tmp_path / "home"
    d = make_daemon(home=home, config="shutdown_grace_seconds = 3\n")
    with d.client() as api:
        app_id = create_app(api)
        push_dir(api, app_id, write_app(tmp_path / "app", SLEEPER, kind="binary"), tmp_path)
        made = api.post(f"/v1/applications/{app_id}/runs", json={"input": {}})
        assert made.status_code == 201, made.text
        meta = f"/v1/applications/{app_id}/runs/{made.json()['run_id']}/metadata"
        wait_for(lambda: api.get(meta).json()["metadata"]["status_v2"] == "running")
    stop = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "daemon", "stop", "--home", str(home)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        marker = home / "daemon.stopping"  # written by the stop right before its signal
        deadline = time.monotonic() + 2.0
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stop.poll() is None  # the old daemon has 3 s of grace to go
        started = orch("daemon", "start", "--home", str(home), "--port", "0")
        assert stop.wait(30) == 0, stop.stderr.read() if stop.stderr else ""
    finally:
        if stop.poll() is None:
            stop.kill()
    assert started.returncode == 0, started.stderr
    assert "is stopping; waiting for it to end" in started.stderr, started.stderr
    try:
        assert d.process.poll() is not None  # the old one ended; the new one answers
        health = httpx.get(f"{started.stdout.strip()}/healthz", timeout=10)
        assert health.status_code == 200
    finally:
        assert orch("daemon", "stop", "--home", str(home)).returncode == 0
