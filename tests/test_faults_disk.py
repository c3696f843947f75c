"""A full disk is a state, not a crash: on a small tmpfs home mounted by the test.

A model fills the disk: its run ends failed naming the disk within seconds,
write requests answer 507 with the free space needed, reads, cancel and delete
keep working, and once space returns the reserve is made again and a new run
succeeds, all on the same daemon. The store, the log handler and the verdict
on a run are also tested in process, on the same kind of disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from orchestrator.config import Settings
from orchestrator.daemon_log import HoldingHandler
from orchestrator.disk import DiskMonitor, DiskWitness
from orchestrator.errors import DiskFull
from orchestrator.home import Home
from orchestrator.models import (
    App,
    EnvStatus,
    Executable,
    Failure,
    FailureKind,
    Run,
    RunStatus,
    now,
)
from orchestrator.runs.events import RunEvents
from orchestrator.runs.executor import Executor
from orchestrator.runs.manifests import ManifestCache
from orchestrator.runs.scheduler import Scheduler
from orchestrator.runs.states import RunStates
from orchestrator.store import Store
from tests.fakes import FakeBackend
from tests.faults import MIB, fill, orch, tmpfs
from tests.helpers import Daemon, create_app, push_dir, wait_for, wait_run, write_app

MANIFEST = {"type": "python", "runtime": "py", "files": ["main.py"]}
CONFIG = "disk_low_mb = 8\ndisk_reserve_mb = 4\nconcurrency = 2\n"
MODEL = """\
import sys, time
mode = sys.argv[sys.argv.index("-mode") + 1] if "-mode" in sys.argv else "ok"
if mode == "fill":  # writes its output until the disk refuses
    while True:
        sys.stdout.write("x" * 1048576)
        sys.stdout.flush()
if mode == "sleep":
    time.sleep(120)
print('{"statistics": {"result": {"value": 1}}}')
"""


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", 64) as mounted:
        yield mounted


def _health(d: Daemon) -> dict[str, object]:
    disk: dict[str, object] = httpx.get(f"{d.url}/healthz").json()["disk"]
    return disk


def _run(api: httpx.Client, app_id: str, mode: str) -> str:
    r = api.post(f"/v1/applications/{app_id}/runs", json={"input": {}, "options": {"mode": mode}})
    assert r.status_code == 201, r.text
    run_id: str = r.json()["run_id"]
    return run_id


def _assert_507(r: httpx.Response) -> None:
    assert r.status_code == 507, r.text
    body = r.json()
    assert list(body) == ["error"] and "MiB free" in body["error"], body


def test_a_full_disk_is_a_state_not_a_crash(disk: Path, tmp_path: Path) -> None:
    d = Daemon.start(disk / "home", config=CONFIG)
    try:
        api = d.client()
        app_id = create_app(api)
        push_dir(api, app_id, write_app(tmp_path / "app", MODEL), tmp_path)
        upload = api.post(f"/v1/applications/{app_id}/runs/uploadurl").json()["upload_url"]
        assert _health(d)["state"] == "ok" and _health(d)["reserve_held"] is True
        sleeper = _run(api, app_id, "sleep")

        started = time.monotonic()
        filler = wait_run(api, app_id, _run(api, app_id, "fill"), timeout=30)
        assert time.monotonic() - started < 15
        meta = filler["metadata"]
        assert meta["status_v2"] == "failed"
        assert "the disk under orch's home was full" in meta["error"], meta["error"]

        health = _health(d)
        assert health["state"] == "full" and health["reserve_held"] is False
        assert health["low_threshold_bytes"] == 8 * MIB
        assert isinstance(health["free_bytes"], int) and health["free_bytes"] < 8 * MIB
        _assert_507(api.post("/v1/applications", json={"id": "another-app", "name": "x"}))
        _assert_507(api.post(f"/v1/applications/{app_id}/runs", json={"input": {}}))
        _assert_507(api.get(f"/v1/applications/{app_id}/binary"))
        _assert_507(api.put(f"/v1/applications/{app_id}", json={"name": "renamed"}))
        _assert_507(httpx.put(upload, content=b"{}" * 1000))
        assert api.get(f"/v1/applications/{app_id}/runs/{filler['id']}").status_code == 200
        assert api.get("/v1/applications").status_code == 200
        status = orch("daemon", "status", "--home", str(d.home), "--json")
        assert json.loads(status.stdout)["disk_state"] == "full"

        canceled = api.patch(f"/v1/applications/{app_id}/runs/{sleeper}/cancel", timeout=20)
        assert canceled.status_code == 200, canceled.text
        assert canceled.json()["metadata"]["status_v2"] == "canceled"
        assert api.delete(f"/v1/applications/{app_id}/runs/{filler['id']}").status_code == 204

        wait_for(lambda: _health(d)["state"] == "ok" and _health(d)["reserve_held"], 15)
        ok = wait_run(api, app_id, _run(api, app_id, "ok"))
        assert ok["metadata"]["status_v2"] == "succeeded", ok
        assert d.process.poll() is None  # the same daemon: no restart
        assert "released the 4.0 MiB reserve" in d.log()
    finally:
        d.stop()


FILES_MODEL = """\
import os, sys
if "-mode" in sys.argv and sys.argv[sys.argv.index("-mode") + 1] == "files":
    os.mkdir("many")
    n = 0
    while True:  # empty files, no bytes: only the inode table fills
        try:
            open(f"many/{n}", "w").close()
        except OSError:
            break
        n += 1
print('{"statistics": {"result": {"value": 1}}}')
"""


def test_a_disk_out_of_inodes_is_full_too(tmp_path: Path) -> None:
    """Empty files fill a file system's inode table with its blocks still free: the monitor
    saw megabytes free, so runs kept starting and failing, and nothing said why."""
    with tmpfs(tmp_path / "inodes", 64, inodes=4000) as mounted:
        d = Daemon.start(mounted / "home", config="disk_low_mb = 1\ndisk_reserve_mb = 1\n")
        try:
            api = d.client()
            app_id = create_app(api)
            push_dir(api, app_id, write_app(tmp_path / "app", FILES_MODEL), tmp_path)
            assert _health(d)["state"] == "ok"
            filler = wait_run(api, app_id, _run(api, app_id, "files"), timeout=30)
            meta = filler["metadata"]
            assert meta["status_v2"] == "failed"
            assert "the disk under orch's home was full" in meta["error"], meta["error"]
            assert _health(d)["state"] == "full"
            _assert_507(api.post(f"/v1/applications/{app_id}/runs", json={"input": {}}))
            assert api.delete(f"/v1/applications/{app_id}/runs/{filler['id']}").status_code == 204
            wait_for(lambda: _health(d)["state"] == "ok", 15)
            ok = wait_run(api, app_id, _run(api, app_id, "ok"))
            assert ok["metadata"]["status_v2"] == "succeeded", ok
        finally:
            d.stop()


async def test_store_gives_the_reserve_up_to_record_and_never_sticks(disk: Path) -> None:
    """In process: a write on a full disk lands once the reserve is given up; when even that
    is gone, DiskFull, and the next write once there is room works (no open transaction)."""
    monitor = DiskMonitor(disk, low_bytes=0, reserve_bytes=4 * MIB)
    assert monitor.make_reserve()
    store = Store(disk / "orch.db", monitor)
    await store.open()
    try:
        ballast = fill(disk)
        async with store.single() as w:  # needs room in the WAL: the reserve goes
            await w.apps.insert(App(id="one", name="x", description="d" * MIB))
        assert not monitor.reserve_path.exists()
        (disk / "sub").mkdir()
        more = fill(disk / "sub")
        with pytest.raises(DiskFull, match="MiB free"):
            async with store.write() as w:
                await w.apps.insert(App(id="two", name="x", description="d" * 3 * MIB))
        ballast.unlink()
        more.unlink()
        async with store.write() as w:
            await w.apps.insert(App(id="three", name="x"))
        assert {a.id for a in await store.read.apps.list()} == {"one", "three"}
    finally:
        await store.close()


def test_log_lines_refused_by_a_full_disk_are_held_then_written_in_order(disk: Path) -> None:
    log_file = disk / "daemon.log"
    fd = open(log_file, "ab", buffering=0)  # noqa: SIM115 - the handler writes to its fd
    try:
        handler = HoldingHandler(fd.fileno())
        ballast = fill(disk)
        for n in range(3):
            handler.emit(_record(f"line {n} " + "y" * 5000))
        assert handler.held >= 1
        ballast.unlink()
        handler.flush()
        assert handler.held == 0
        lines = log_file.read_text().splitlines()
        assert [line.split()[1] for line in lines] == ["0", "1", "2"]
    finally:
        fd.close()


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("orch.test", logging.WARNING, __file__, 1, message, None, None)


NO_SPACE_LOG = "echo: write error: No space left on device"


@pytest.mark.parametrize(
    ("status", "failure", "during", "log", "blamed"),
    [
        (RunStatus.FAILED, Failure(FailureKind.EXIT, measured=1), True, "", True),
        (RunStatus.FAILED, Failure(FailureKind.SIGNAL, measured=9), True, "", True),
        (RunStatus.SUCCEEDED, None, True, NO_SPACE_LOG, True),
        (RunStatus.SUCCEEDED, None, True, "best value 444", False),
        (RunStatus.SUCCEEDED, None, False, NO_SPACE_LOG, False),
        (RunStatus.FAILED, Failure(FailureKind.EXIT, measured=1), False, "", False),
        (RunStatus.FAILED, Failure(FailureKind.MEMORY, 64, 80), True, "", False),
        (RunStatus.CANCELED, None, True, NO_SPACE_LOG, False),
    ],
)
def test_who_is_blamed_for_a_full_disk(
    status: RunStatus, failure: Failure | None, during: bool, log: str, blamed: bool
) -> None:
    """A failure while the disk was full is the disk's; a success is doubted only when a
    write of its own failed for lack of space (its log says so), not because the disk was
    full (another run filled it); limits and cancels keep their own reason."""
    got_status, got = DiskWitness(during, 0).verdict(status, failure, lambda: log)
    if blamed:
        assert got_status == RunStatus.FAILED and got is not None
        assert got.kind == FailureKind.DISK_FULL and "was full" in got.message
    else:
        assert (got_status, got) == (status, failure)


async def test_queued_runs_wait_while_the_disk_is_low_and_start_when_it_has_room(
    tmp_path: Path,
) -> None:
    """In process, over the fake backend: the scheduler asks the disk before it starts a
    queued run, and ``resume`` (what the disk monitor calls once space returns) starts it."""
    home = Home(tmp_path)
    home.create()
    store = Store(home.db)
    await store.open()
    async with store.write() as w:
        await w.executables.insert_if_missing(
            Executable("e" * 64, 1, MANIFEST, "python", "py", EnvStatus.NONE), "b"
        )
        await w.apps.insert(App("app", "App", executable_id="e" * 64))
    states = RunStates(store, RunEvents())
    backend = FakeBackend(2)
    executor = Executor(store, Settings(home=home), backend, states, ManifestCache())
    disk_ok = False
    scheduler = Scheduler(executor, states, backend.slots, admit=lambda: disk_ok)
    try:
        run = Run("run-low-disk", "app", "devint", "e" * 64, created_at=now())
        await states.create(run)
        scheduler.submit(run)
        for _ in range(20):  # it would have started within a few turns of the loop
            await asyncio.sleep(0.01)
        assert backend.started == [] and scheduler.queued == 1
        disk_ok = True
        scheduler.resume()
        await backend.wait_started(1)
        backend.finish(run.id)
        await scheduler.idle()
        got = await store.read.runs.get(run.id)
        assert got is not None and got.status == RunStatus.SUCCEEDED
    finally:
        await scheduler.stop(0.1)
        await store.close()


def test_an_upload_that_would_cross_the_threshold_is_refused_up_front(disk: Path) -> None:
    d = Daemon.start(disk / "home", config=CONFIG)
    try:
        api = d.client()
        app_id = create_app(api)
        url = api.post(f"/v1/applications/{app_id}/runs/uploadurl").json()["upload_url"]
        r = httpx.put(url, content=b"x" * (60 * MIB))  # the tmpfs is 64 MiB
        _assert_507(r)
        assert "besides the 60.0 MiB of this request" in r.json()["error"]
        assert httpx.put(url, content=b"{}").status_code == 200  # a small one still fits
    finally:
        d.stop()


def test_an_upload_that_fills_the_disk_midway_is_a_507_and_leaves_nothing(disk: Path) -> None:
    """No Content-Length, so the gate cannot refuse it up front: the disk fills while the
    body streams in. The answer is a 507 (not a 500 or a dropped connection), the half
    body is removed, and the disk is ``ok`` again without a restart."""
    d = Daemon.start(disk / "home", config=CONFIG)
    try:
        api = d.client()
        app_id = create_app(api)
        url = api.post(f"/v1/applications/{app_id}/runs/uploadurl").json()["upload_url"]

        def body() -> Iterator[bytes]:
            for _ in range(80):  # 80 MiB onto a 64 MiB disk
                yield b"x" * MIB

        r = httpx.put(url, content=body(), timeout=60)
        _assert_507(r)
        assert not list((d.home / "uploads").iterdir())
        wait_for(lambda: _health(d)["state"] == "ok", 15)
        assert httpx.put(url, content=b"{}").status_code == 200  # the same URL, retried
    finally:
        d.stop()


def test_a_lowered_reserve_setting_shrinks_the_reserve_or_removes_it(tmp_path: Path) -> None:
    """Lowering ``disk_reserve_mb`` (or setting 0) left the old, larger file in place."""
    DiskMonitor(tmp_path, reserve_bytes=4 * MIB).make_reserve()
    reserve = DiskMonitor(tmp_path).reserve_path
    assert reserve.stat().st_size == 4 * MIB
    assert DiskMonitor(tmp_path, reserve_bytes=1 * MIB).make_reserve()
    assert reserve.stat().st_size == 1 * MIB and reserve.stat().st_blocks * 512 < 2 * MIB
    assert DiskMonitor(tmp_path, reserve_bytes=0).make_reserve()
    assert not reserve.exists()


def test_a_low_disk_is_called_low_and_names_its_setting(tmp_path: Path) -> None:
    """Below ``disk_low_mb`` but far from full, the 507 said the disk was full."""
    monitor = DiskMonitor(tmp_path, low_bytes=DiskMonitor(tmp_path).free_bytes() * 2)
    assert monitor.sample().state == "low"
    assert "is low (below disk_low_mb)" in monitor.error().message
