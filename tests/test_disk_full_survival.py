"""A full disk is survivable: on a small tmpfs home mounted by the test (``tests/faults``).

A home its own runs filled starts again (``full``: new data answers 507, deletes work,
and the start says so in one line); a run is failed for the disk only when a write of
its own failed, not because another run filled the disk; uploads being received count
against the free space, so two cannot together overfill what each alone fitted, and one
that does not fit is told so (not "full"); deletes work on a disk at 0 bytes; and
``/healthz`` says ``degraded`` while the disk refuses new data.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults import MIB, fill, free_bytes, orch, tmpfs
from tests.helpers import Daemon, create_app, push_dir, wait_for, wait_run, write_app

CONFIG = "disk_low_mb = 8\ndisk_reserve_mb = 4\nconcurrency = 2\n"
MODEL = """\
import sys, time
mode = sys.argv[sys.argv.index("-mode") + 1] if "-mode" in sys.argv else "ok"
if mode == "fill":  # writes its output until the disk refuses: it fails
    while True:
        sys.stdout.write("x" * 1048576)
        sys.stdout.flush()
if mode == "fill_quietly":  # the same, but says so on stderr and exits 0 (a sloppy model)
    try:
        with open("big", "wb") as fh:
            while True:
                fh.write(b"x" * 1048576)
                fh.flush()
    except OSError as exc:
        time.sleep(2)  # the daemon has given its reserve up by then: the line lands
        print(f"write failed: {exc}", file=sys.stderr, flush=True)
if mode == "sleep":
    time.sleep(float(sys.argv[sys.argv.index("-seconds") + 1]))
print('{"statistics": {"result": {"value": 1}}}')
"""


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", 48) as mounted:
        yield mounted


def _health(url: str) -> dict[str, object]:
    body: dict[str, object] = httpx.get(f"{url}/healthz").json()
    return body


def _disk_state(url: str) -> object:
    disk = _health(url)["disk"]
    assert isinstance(disk, dict)
    return disk["state"]


def _run(api: httpx.Client, app_id: str, **options: str) -> str:
    r = api.post(f"/v1/applications/{app_id}/runs", json={"input": {}, "options": options})
    assert r.status_code == 201, r.text
    run_id: str = r.json()["run_id"]
    return run_id


def _started(tmp_path: Path, home: Path) -> tuple[Daemon, httpx.Client, str]:
    d = Daemon.start(home, config=CONFIG)
    api = d.client()
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp_path / "app", MODEL), tmp_path)
    return d, api, app_id


def test_a_home_its_own_runs_filled_starts_full_and_its_runs_can_be_deleted(
    disk: Path, tmp_path: Path
) -> None:
    """A stop after a run filled the disk left a home that could not start ("orch needs at
    least 6.0 MiB to start", the reserve asked for again with what releasing it had
    freed): the space was the home's own runs', which only the daemon deletes."""
    home = disk / "home"
    d, api, app_id = _started(tmp_path, home)
    try:
        filler = wait_run(api, app_id, _run(api, app_id, mode="fill"), timeout=30)
        assert filler["metadata"]["status_v2"] == "failed"
        assert _disk_state(d.url) == "full"
    finally:
        d.stop()
    assert free_bytes(disk) < 4 * MIB + 2 * MIB  # less than the old start asked for

    started = orch("daemon", "start", "--home", str(home), "--port", "0", timeout=60)
    try:
        assert started.returncode == 0, started.stderr
        notes = [line for line in started.stderr.splitlines() if "is full" in line]
        assert len(notes) == 1, (started.stderr, (home / "daemon.log").read_text()[-3000:])
        assert "refuses new data (507)" in notes[0] and "deletes work" in notes[0], notes
        assert notes[0] in (home / "daemon.log").read_text()
        info = json.loads((home / "daemon.json").read_text())
        url, key = info["url"], (home / "api-key").read_text().strip()
        health = _health(url)
        assert health["status"] == "degraded" and _disk_state(url) == "full", health
        again = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"})
        refused = again.post("/v1/applications", json={"id": "more", "name": "x"})
        assert refused.status_code == 507, refused.text
        gone = again.delete(f"/v1/applications/{app_id}/runs/{filler['id']}")
        assert gone.status_code == 204, gone.text
        wait_for(lambda: _health(url)["status"] == "ok", 15)
        assert _disk_state(url) == "ok"
        ok = wait_run(again, app_id, _run(again, app_id))
        assert ok["metadata"]["status_v2"] == "succeeded", ok
    finally:
        stopped = orch("daemon", "stop", "--home", str(home))
        assert stopped.returncode == 0, stopped.stderr


def test_a_run_is_failed_for_the_disk_only_when_a_write_of_its_own_failed(
    disk: Path, tmp_path: Path
) -> None:
    """A healthy run that ended while another one had filled the disk (the reserve given
    up, the state ``full``) was failed "its output may be incomplete" with its output
    whole; the run that met the full disk and said so on stderr, though it exits 0, is."""
    d, api, app_id = _started(tmp_path, disk / "home")
    try:
        healthy = _run(api, app_id, mode="sleep", seconds="6")
        wait_for(lambda: api.get(f"/v1/applications/{app_id}/runs/{healthy}").json()
                 ["metadata"]["status_v2"] == "running", 15)  # fmt: skip
        sloppy = wait_run(api, app_id, _run(api, app_id, mode="fill_quietly"), timeout=30)
        meta = sloppy["metadata"]
        assert meta["status_v2"] == "failed", meta
        assert "a write of the run failed" in meta["error"], meta["error"]
        assert "No space left on device" in meta["error"], meta["error"]
        assert _disk_state(d.url) == "full"

        done = wait_run(api, app_id, healthy, timeout=30)
        assert done["metadata"]["status_v2"] == "succeeded", done["metadata"].get("error")
        assert done["output"] == {"statistics": {"result": {"value": 1}}}
        assert _disk_state(d.url) == "full"  # it ended on a disk still called full
    finally:
        d.stop()


def test_uploads_being_received_count_against_the_free_space(disk: Path, tmp_path: Path) -> None:
    """Two 17 MiB inputs with 36 MiB free were both taken, each checked alone: the disk
    went to 0. And the 507 of an upload that does not fit said the disk was "full"."""
    d = Daemon.start(disk / "home", config=CONFIG)
    try:
        api = d.client()
        app_id = create_app(api)
        size = (free_bytes(disk) - 8 * MIB) // 2 + 2 * MIB  # one fits, two do not
        first = api.post(f"/v1/applications/{app_id}/runs/uploadurl").json()["upload_url"]
        second = api.post(f"/v1/applications/{app_id}/runs/uploadurl").json()["upload_url"]
        go_on, answers = threading.Event(), []

        def slow_body() -> Iterator[bytes]:
            yield b" " * MIB
            go_on.wait(30)
            for _ in range(size // MIB - 1):
                yield b" " * MIB
            yield b" " * (size % MIB)

        def upload() -> None:
            headers = {"Content-Length": str(size)}
            answers.append(httpx.put(first, content=slow_body(), headers=headers, timeout=60))

        sender = threading.Thread(target=upload)
        sender.start()
        try:
            wait_for(lambda: any((d.home / "uploads").glob("*.part")), 15)
            r = httpx.put(second, content=b" " * size, timeout=60)
        finally:
            go_on.set()
            sender.join(60)
        assert r.status_code == 507, r.text
        message = r.json()["error"]
        assert "does not fit" in message and "is full" not in message, message
        assert "promised to uploads being received" in message, message
        assert answers and answers[0].status_code == 200, answers
        assert _disk_state(d.url) == "ok"
        assert httpx.put(second, content=b"{}").status_code == 200  # a small one fits
    finally:
        d.stop()


def test_deletes_work_on_a_disk_at_zero_bytes(disk: Path, tmp_path: Path) -> None:
    """A file outside orch filled the disk, the room its released reserve gave too: deleting
    a run answered 507 "Free some space (e.g. delete old runs)" (SQLite needs room in its
    WAL to delete a row). Run, input, version and app deletes all work at 0 bytes."""
    d, api, app_id = _started(tmp_path, disk / "home")
    try:
        runs = [wait_run(api, app_id, _run(api, app_id))["id"] for _ in range(2)]
        made = api.post(f"/v1/applications/{app_id}/inputs", json={"name": "i", "run_id": runs[0]})
        assert made.status_code == 201, made.text
        version = api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1", "name": "v"})
        assert version.status_code == 201, version.text
        ballast = fill(disk)
        wait_for(lambda: _disk_state(d.url) == "full", 15)  # the reserve is given up
        (disk / "more").mkdir()
        more = fill(disk / "more")  # ... and filled too
        assert free_bytes(disk) == 0
        health = _health(d.url)
        assert health["status"] == "degraded", health

        base = f"/v1/applications/{app_id}"
        for path in (
            f"{base}/runs/{runs[1]}",
            f"{base}/inputs/{made.json()['id']}",
            f"{base}/versions/v1",
            f"{base}/runs/{runs[0]}",
        ):
            gone = api.delete(path)
            assert gone.status_code == 204, (path, gone.text)
        assert api.delete(base).status_code == 204
        assert api.get(base).status_code == 404
        assert "released 1.0 MiB for a delete" in d.log()

        ballast.unlink()
        more.unlink()
        wait_for(lambda: _health(d.url)["status"] == "ok", 15)
        kept = d.home / "disk-reserve-deletes"
        wait_for(lambda: kept.exists() and kept.stat().st_size == MIB, 15)  # taken back
    finally:
        d.stop()


def test_a_home_with_no_room_to_record_anything_is_still_refused(disk: Path) -> None:
    """Starting without the reserve has a floor: under 2 MiB nothing could be recorded."""
    home = disk / "home"
    Daemon.start(home, config=CONFIG).stop()
    (home / "disk-reserve").unlink()
    (home / "disk-reserve-deletes").unlink()
    ballast = fill(disk)
    try:
        done = orch("daemon", "start", "--home", str(home), "--port", "0", timeout=30)
        assert done.returncode != 0
        line = done.stderr.strip()
        assert "needs at least 2.0 MiB to start" in line and "outside orch" in line, line
    finally:
        ballast.unlink()
