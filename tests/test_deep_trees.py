"""A model that leaves a folder tree thousands of levels deep, against a real daemon: its
disk limit sees every byte, its run can be deleted, and the daemon still starts."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.conftest import MakeDaemon
from tests.helpers import Daemon, create_app, push_dir, run_and_wait, write_app

DEEP_TREE = """
import json, os, sys
size = json.load(sys.stdin)["mib"] * 1024 * 1024
fd = os.open(".", os.O_RDONLY)
for _ in range(2500):  # past Python's recursion limit, and past PATH_MAX
    os.mkdir("d", dir_fd=fd)
    child = os.open("d", os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd = child
with open(os.open("big", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as fh:
    fh.write(b"x" * size)
print(json.dumps({"ok": True}))
"""


def _deploy(api: httpx.Client, tmp_path: Path) -> str:
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp_path / "deep", DEEP_TREE), tmp_path)
    return app_id


def test_bytes_past_path_max_count_against_the_disk_limit(
    api: httpx.Client, daemon: Daemon, tmp_path: Path
) -> None:
    app_id = _deploy(api, tmp_path)
    body = {"input": {"mib": 8}, "configuration": {"limits": {"disk_mb": 4}}}
    result = run_and_wait(api, app_id, body)
    meta = result["metadata"]
    assert meta["status_v2"] == "failed"
    assert re.match(r"disk limit 4 MiB exceeded: wrote \d+ MiB", meta["error"]), meta["error"]
    left = daemon.home / "runs" / result["id"] / "work"
    assert not (left / "d").exists()  # cut back, however deep


def test_a_deep_run_is_deleted_and_the_daemon_starts_again(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    daemon = make_daemon()
    with daemon.client() as api:
        app_id = _deploy(api, tmp_path)
        kept = run_and_wait(api, app_id, {"input": {"mib": 0}})
        gone = run_and_wait(api, app_id, {"input": {"mib": 0}})
        assert kept["metadata"]["status_v2"] == gone["metadata"]["status_v2"] == "succeeded"
        assert api.delete(f"/v1/applications/{app_id}/runs/{gone['id']}").status_code == 204
    assert not (daemon.home / "runs" / gone["id"]).exists()
    (daemon.home / "runs" / kept["id"]).rename(daemon.home / "runs" / "run-no-row-names-it")
    daemon.stop()
    again = make_daemon(home=daemon.home)  # its sweep removes the folder no row names
    assert not (again.home / "runs" / "run-no-row-names-it").exists()
    with again.client() as api:
        assert api.get(f"/v1/applications/{app_id}").status_code == 200
