"""The daemon itself: auth, health, OpenAPI, one daemon per home, the error envelope."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import MakeDaemon
from tests.helpers import Daemon, create_app, push_dir, wait_for, write_app


def test_health_is_open_and_v1_needs_the_key(daemon: Daemon) -> None:
    health = httpx.get(f"{daemon.url}/healthz").json()
    assert health["status"] == "ok" and set(health["runs"]) == {"running", "queued"}
    r = httpx.get(f"{daemon.url}/v1/applications")
    assert r.status_code == 401 and "bearer" in r.json()["error"]
    r = httpx.get(f"{daemon.url}/v1/applications", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json() == {"error": "invalid bearer key"}
    r = httpx.get(f"{daemon.url}/v1/no-such-route")  # no key, no map of the routes
    assert r.status_code == 401
    key = {"Authorization": f"Bearer {daemon.key}"}
    r = httpx.get(f"{daemon.url}/v1/no-such-route", headers=key)
    assert r.status_code == 404 and r.json() == {"error": "no such route"}


def test_listens_on_loopback_and_key_file_is_private(daemon: Daemon) -> None:
    assert daemon.url.startswith("http://127.0.0.1:")
    assert oct(os.stat(daemon.home / "api-key").st_mode & 0o777) == "0o600"
    info = json.loads((daemon.home / "daemon.json").read_text())
    assert info["pid"] == daemon.process.pid and info["url"] == daemon.url


def test_forwarded_headers_are_not_trusted(api: httpx.Client, daemon: Daemon) -> None:
    """Nothing proxies a loopback daemon: a client's X-Forwarded-* must not rewrite the URLs
    it hands out (the SDK PUTs inputs to them)."""
    app_id = api.post("/v1/applications", json={"id": "fwd", "name": "fwd"}).json()["id"]
    spoof = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    up = api.post(f"/v1/applications/{app_id}/runs/uploadurl", headers=spoof).json()
    assert up["upload_url"].startswith(daemon.url + "/")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="scheduling policy is Linux's")
def test_helper_threads_give_way_to_the_event_loop(daemon: Daemon) -> None:
    """The SQLite writer (and chores) thread run SCHED_BATCH, the event loop does not."""
    tasks = Path(f"/proc/{daemon.process.pid}/task")
    policies = {
        int(tid.name): int((tid / "stat").read_text().rsplit(")", 1)[1].split()[38])
        for tid in tasks.iterdir()
    }
    assert policies.pop(daemon.process.pid) == os.SCHED_OTHER
    assert os.SCHED_BATCH in policies.values()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread names are /proc's")
def test_helper_threads_carry_their_names(daemon: Daemon) -> None:
    """``top -H`` shows which thread spends the CPU (the benchmark splits it so too)."""
    tasks = Path(f"/proc/{daemon.process.pid}/task")
    names = {(tid / "comm").read_text().strip() for tid in tasks.iterdir()}
    assert {"orch-chores", "orch-checkpoint"} <= names


def test_openapi_lists_the_routes(daemon: Daemon) -> None:
    spec = httpx.get(f"{daemon.url}/openapi.json").json()
    assert "/v1/applications/{app_id}/runs" in spec["paths"]


def test_errors_share_one_envelope(api: httpx.Client) -> None:
    cases = [
        api.post(
            "/v1/applications", content=b"{not json", headers={"Content-Type": "application/json"}
        ),
        api.get("/v1/applications/missing-app"),
        api.get("/v1/nothing-here"),
        api.patch("/v1/applications"),
    ]
    assert [r.status_code for r in cases] == [400, 404, 404, 405]
    for r in cases:
        body = r.json()
        assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]
    assert "malformed JSON" in cases[0].json()["error"]


def test_second_daemon_on_the_same_home_refuses(daemon: Daemon) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "daemon",
            "run",
            "--home",
            str(daemon.home),
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "already running" in done.stderr
    assert httpx.get(f"{daemon.url}/healthz").status_code == 200


def test_stale_daemon_file_is_replaced(make_daemon: MakeDaemon) -> None:
    first = make_daemon()
    first.kill()  # SIGKILL: daemon.json stays behind, naming a dead pid
    assert (first.home / "daemon.json").exists()
    second = make_daemon(home=first.home)
    assert json.loads((first.home / "daemon.json").read_text())["pid"] == second.process.pid


def test_sigterm_stops_cleanly(make_daemon: MakeDaemon) -> None:
    d = make_daemon()
    assert d.stop() == 0
    assert not (d.home / "daemon.json").exists()
    assert "orch daemon stopped" in d.log()


def test_a_long_poll_does_not_hold_the_stop_up(make_daemon: MakeDaemon, tmp_path: Path) -> None:
    """A client waiting for a long run (``orch app run -w``) gets the run as it is when the
    daemon stops, instead of the stop waiting for the run to end."""
    d = make_daemon(config="shutdown_grace_seconds = 1\n")
    with d.client() as api:
        app_id = create_app(api)
        push_dir(
            api, app_id, write_app(tmp_path / "app", "import time\ntime.sleep(60)\n"), tmp_path
        )
        run_id = api.post(f"/v1/applications/{app_id}/runs", json={"input": {}}).json()["run_id"]
        wait_for(lambda: api.get(f"/v1/applications/{app_id}/runs/{run_id}/metadata").json()
                 ["metadata"]["status_v2"] == "running")  # fmt: skip
        with ThreadPoolExecutor(1) as pool:
            poll = pool.submit(
                api.get, f"/v1/applications/{app_id}/runs/{run_id}", params={"wait": 120}
            )
            time.sleep(0.5)  # the long-poll is parked
            began = time.monotonic()
            assert d.stop(timeout=30) == 0
            stopped_in = time.monotonic() - began
            answer = poll.result(timeout=5)
    assert stopped_in < 10, f"the stop took {stopped_in:.1f} s"
    assert answer.status_code == 200
    assert answer.json()["metadata"]["status_v2"] in ("running", "failed", "canceled")


def test_oversized_json_body_is_413_before_it_is_read(api: httpx.Client) -> None:
    r = api.post(
        "/v1/applications",
        content=b"{" + b" " * (65 * 1024 * 1024) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"] == "request body over 64 MiB"
    # only a run's body is told of upload URLs: a secrets collection's advice was wrong
    r = api.post(
        "/v1/applications/nope/runs",
        content=b"{" + b" " * (65 * 1024 * 1024) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413 and "upload URL" in r.json()["error"]
