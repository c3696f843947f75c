"""Hostile models over HTTP: each is contained with the limit named, and others keep running."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.helpers import Daemon, create_app, push_dir, run_and_wait, wait_for, write_app

HOG = """\
chunks = []
while True:
    chunks.append(bytearray(50 * 1024 * 1024))
"""
SPINNER = "while True:\n    pass\n"
SLEEPER = "import time\ntime.sleep(60)\n"
FLOOD = "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n"
ESCAPER = """\
import os, sys, time
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        print(f"grandchild {os.getpid()}", file=sys.stderr, flush=True)
        time.sleep(300)
    os._exit(0)
os.waitpid(pid, 0)
time.sleep(0.3)
print("{}")
"""
STUBBORN = """\
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ignoring SIGTERM", file=sys.stderr, flush=True)
time.sleep(120)
"""
FORK_BOMB = """\
import os, time
for _ in range(200):
    try:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
    except OSError:
        pass
time.sleep(30)
"""
CPU_SPREAD = """\
import os, time
for _ in range(3):  # each child stays under the limit alone; together they pass it
    if os.fork() == 0:
        end = time.process_time() + 0.9
        while time.process_time() < end:
            pass
        time.sleep(60)
        os._exit(0)
time.sleep(60)
"""
CPU_WAITED = """\
import os, time
for _ in range(3):
    if os.fork() == 0:
        end = time.process_time() + 0.9
        while time.process_time() < end:
            pass
        os._exit(0)
for _ in range(3):
    os.wait()
"""


def deploy(api: httpx.Client, tmp: Path, source: str) -> str:
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp / app_id, source), tmp)
    return app_id


@pytest.mark.parametrize(
    ("source", "limits", "message"),
    [
        (HOG, {"memory_mb": 200}, r"memory limit 200 MiB exceeded: peak \d+"),
        (SPINNER, {"cpu_seconds": 1}, r"cpu time limit 1 s exceeded: used [\d.]+ s"),
        (CPU_SPREAD, {"cpu_seconds": 1}, r"cpu time limit 1 s exceeded: used [\d.]+ s"),
        (CPU_WAITED, {"cpu_seconds": 1}, r"cpu time limit 1 s exceeded: used [\d.]+ s"),
        (SLEEPER, {"timeout_seconds": 1}, r"timeout of 1 s exceeded: ran [\d.]+ s"),
        (FLOOD, {"output_mb": 1}, r"output limit 1 MiB exceeded"),
        (FORK_BOMB, {"processes": 20}, r"process limit 20 exceeded"),
    ],
    ids=[
        "memory-hog",
        "cpu-spinner",
        "cpu-in-children",  # caught by sampling: the children never end
        "cpu-in-waited-children",  # and when they end (the total is also checked at the end)
        "sleeper",
        "output-flood",
        "fork-bomb",
    ],
)
def test_limit_breach_fails_the_run_with_the_limit_named(
    api: httpx.Client, tmp_path: Path, source: str, limits: dict, message: str
) -> None:
    hostile = deploy(api, tmp_path, source)
    calm = deploy(api, tmp_path, "import sys\nprint(sys.stdin.read())\n")
    r = api.post(
        f"/v1/applications/{hostile}/runs",
        json={"input": {}, "configuration": {"limits": limits}},
    )
    run_id = r.json()["run_id"]
    other = run_and_wait(api, calm, {"input": {"ok": True}})  # the daemon keeps serving
    assert other["metadata"]["status_v2"] == "succeeded"
    res = api.get(f"/v1/applications/{hostile}/runs/{run_id}", params={"wait": 60}).json()
    meta = res["metadata"]
    assert meta["status_v2"] == "failed"
    assert re.search(message, meta["error"]), meta["error"]
    assert not _survivors(run_id)


def test_setsid_grandchild_does_not_survive(api: httpx.Client, tmp_path: Path) -> None:
    app_id = deploy(api, tmp_path, ESCAPER)
    res = run_and_wait(api, app_id, {"input": {}})
    assert res["metadata"]["status_v2"] == "succeeded"
    log = api.get(f"/v1/applications/{app_id}/runs/{res['id']}/logs").json()["log"]
    pid = int(re.search(r"grandchild (\d+)", log).group(1))  # type: ignore[union-attr]
    wait_for(lambda: not _alive(pid), timeout=5)


def test_cancel_kills_a_process_that_ignores_sigterm(api: httpx.Client, tmp_path: Path) -> None:
    app_id = deploy(api, tmp_path, STUBBORN)
    run_id = api.post(f"/v1/applications/{app_id}/runs", json={"input": {}}).json()["run_id"]
    logs = f"/v1/applications/{app_id}/runs/{run_id}/logs"
    wait_for(lambda: "ignoring SIGTERM" in api.get(logs).json()["log"])
    began = time.monotonic()
    r = api.patch(f"/v1/applications/{app_id}/runs/{run_id}/cancel")
    assert r.json()["metadata"]["status_v2"] == "canceled"
    assert time.monotonic() - began < 15
    assert not _survivors(run_id)


def test_run_limits_cannot_exceed_instance_caps(api: httpx.Client, tmp_path: Path) -> None:
    app_id = deploy(api, tmp_path, "print('{}')\n")
    api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"})
    api.post(
        f"/v1/applications/{app_id}/instances",
        json={"id": "small", "version_id": "v1", "configuration": {"limits": {"memory_mb": 128}}},
    )
    r = api.post(
        f"/v1/applications/{app_id}/runs",
        params={"instance_id": "small"},
        json={"input": {}, "configuration": {"limits": {"memory_mb": 512}}},
    )
    assert r.status_code == 400
    assert "memory_mb=512 exceeds the instance cap 128" in r.json()["error"]
    ok = run_and_wait(api, app_id, {"input": {}}, instance="small")
    assert ok["metadata"]["limits"]["memory_mb"] == 128


def test_execution_class_sets_limits(api: httpx.Client, tmp_path: Path) -> None:
    app_id = deploy(api, tmp_path, "print('{}')\n")
    res = run_and_wait(api, app_id, {"input": {}, "configuration": {"execution_class": "small"}})
    assert res["metadata"]["limits"]["memory_mb"] == 512
    assert res["metadata"]["execution_class"] == "small"
    # A Nextmv Cloud class name is not refused (cloud code runs unmodified): default limits.
    cloud = run_and_wait(
        api, app_id, {"input": {}, "configuration": {"execution_class": "6c9500mb870s"}}
    )
    assert cloud["metadata"]["status_v2"] == "succeeded"
    assert cloud["metadata"]["limits"]["memory_mb"] == 4096


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _survivors(run_id: str) -> list[int]:
    """Processes still carrying the run's marker in their environment."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get("ORCH_RUN_ID") == run_id and proc.status() != "zombie":
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


DISK_FILLER = """\
import os, sys, time
print("writing a lot", file=sys.stderr, flush=True)
os.makedirs("outputs", exist_ok=True)
chunk = b"x" * (1 << 20)
for folder in (os.environ["TMPDIR"], "outputs"):
    with open(os.path.join(folder, "big"), "wb") as fh:
        for _ in range(100):
            fh.write(chunk)
            fh.flush()
            time.sleep(0.005)
print("{}")
"""


def test_a_run_past_its_disk_limit_fails_and_its_files_go(
    api: httpx.Client, daemon: Daemon, tmp_path: Path
) -> None:
    app_id = deploy(api, tmp_path, DISK_FILLER)
    began = time.monotonic()
    res = run_and_wait(api, app_id, {"input": {}, "configuration": {"limits": {"disk_mb": 20}}})
    meta = res["metadata"]
    assert meta["status_v2"] == "failed"
    assert re.match(r"disk limit 20 MiB exceeded: wrote \d+ MiB", meta["error"]), meta["error"]
    assert time.monotonic() - began < 10
    assert meta["limits"]["disk_mb"] == 20
    run_dir = daemon.home / "runs" / res["id"]
    left = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file() and not p.is_symlink())
    assert left < 1 << 20  # only the input and the log's end are left
    log = api.get(f"/v1/applications/{app_id}/runs/{res['id']}/logs").json()["log"]
    assert "writing a lot" in log


def test_disk_mb_comes_from_the_cli_and_execution_classes(
    api: httpx.Client, daemon: Daemon, tmp_path: Path
) -> None:
    app_id = deploy(api, tmp_path, "print('{}')\n")
    argv = [sys.executable, "-m", "orchestrator", "app", "run", "-a", app_id, "--disk-mb", "7",
            "--wait", "--json", "--home", str(daemon.home)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("ORCH_URL", "ORCH_API_KEY")}
    done = subprocess.run(argv, input="{}", capture_output=True, text=True, env=env, timeout=90)
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["id"]
    meta = api.get(f"/v1/applications/{app_id}/runs/{run_id}/metadata").json()
    assert meta["metadata"]["limits"]["disk_mb"] == 7
    small = run_and_wait(api, app_id, {"input": {}, "configuration": {"execution_class": "small"}})
    assert small["metadata"]["limits"]["disk_mb"] == 1024


LINKER = """\
import os, sys
os.unlink("app.yaml")  # a link the daemon made, replaced by one of the model's own
os.symlink("/nonexistent/app.yaml", "app.yaml")
print("linking", file=sys.stderr, flush=True)
i = 0
while True:  # each link takes an inode (4 KiB by orch's count) and no block
    os.symlink("/nonexistent/%06d" % i, "L%06d" % i)
    i += 1
"""


def test_a_disk_breach_leaves_only_the_links_the_daemon_made(
    api: httpx.Client, daemon: Daemon, tmp_path: Path
) -> None:
    """After a breach the working folder keeps the daemon's links into the package (by
    name and target), not the model's: not its thousands of links, nor one it named like
    a package file it replaced."""
    app_id = deploy(api, tmp_path, LINKER)
    limits = {"disk_mb": 5, "timeout_seconds": 60}
    res = run_and_wait(api, app_id, {"input": {}, "configuration": {"limits": limits}})
    meta = res["metadata"]
    assert re.match(r"disk limit 5 MiB exceeded: wrote \d+ MiB", meta["error"]), meta["error"]
    work = daemon.home / "runs" / res["id"] / "work"
    if not work.is_dir():
        pytest.skip("the run's folder is on a Dask worker")
    left = {entry.name: os.readlink(entry.path) for entry in os.scandir(work)}
    package = os.path.dirname(left["main.py"])
    assert (daemon.home / "executables") in Path(package).parents
    assert left == {name: f"{package}/{name}" for name in os.listdir(package) if name != "app.yaml"}
