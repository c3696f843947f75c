"""What a model sees of cgroups: its own run's groups with its limits, nothing of anyone else.

A root daemon on a cgroup host: one model holds its run open while another walks all of
``/sys/fs/cgroup``, reading every ``cgroup.procs`` and ``tasks``, and resolves its own
memory and task limits the way runtimes do (``/proc/self/cgroup`` + ``mountinfo``).
Then the fallback where the host refuses cgroup mounts: the view masks the folder, and
the daemon says so (no ``cgroup-ns`` among its protections, the reason under
``unavailable["cgroup-ns"]``).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.config import IsolationSettings
from orchestrator.models import Limits
from orchestrator.runs.cgroups import MIB, detect
from orchestrator.runs.isolation import Isolation, decide, jail_plan
from orchestrator.runs.jail import sysc, zygote
from orchestrator.runs.jail.view import View, enter_namespaces
from orchestrator.runs.sandbox import ProcessSpec, Sandbox
from tests.helpers import Daemon, create_app, push_dir, wait_for, wait_run, write_app

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or detect() is None, reason="needs a root daemon on a cgroup host"
)

HOLDER = """\
import os, time
open("pid", "w").write(str(os.getpid()))
deadline = time.monotonic() + 60
while not os.path.exists("stop") and time.monotonic() < deadline:
    time.sleep(0.02)
print("{}")
"""

LOOKER = """\
import json, os, time
time.sleep(0.1)  # the jail's memory keeper shares the group for its first 10 ms (enter.py)
seen, folders = {}, []
for top, dirs, files in os.walk("/sys/fs/cgroup"):
    folders += [os.path.join(top, d) for d in dirs]
    for name in ("cgroup.procs", "tasks"):
        if name in files:
            try:
                seen[os.path.join(top, name)] = [int(p) for p in open(os.path.join(top, name))]
            except OSError as exc:
                seen[os.path.join(top, name)] = exc.errno
mounts = []  # as a runtime finds its limits: mountinfo, then /proc/self/cgroup
for line in open("/proc/self/mountinfo"):
    left, _, right = line.partition(" - ")
    fields, after = left.split(), right.split()
    if after[0] in ("cgroup", "cgroup2"):
        mounts.append((fields[3], fields[4], after[0], after[2].split(",")))
groups = {}
for line in open("/proc/self/cgroup"):
    _, names, path = line.rstrip("\\n").split(":", 2)
    for name in names.split(",") if names else [""]:
        groups[name] = path

def limit(controller, v1_file, v2_file):
    for root, point, kind, options in mounts:
        v1 = kind == "cgroup" and controller in options
        path = groups.get(controller if v1 else "")
        if (v1 or kind == "cgroup2") and path is not None and path.startswith(root):
            name = v1_file if v1 else v2_file
            try:
                return open(os.path.join(point, os.path.relpath(path, root), name)).read().strip()
            except OSError:
                pass
    return None

print(json.dumps({
    "pid": os.getpid(), "seen": seen, "folders": folders, "groups": groups,
    "mountpoints": [point for _, point, _, _ in mounts],
    "memory": limit("memory", "memory.limit_in_bytes", "memory.max"),
    "pids": limit("pids", "pids.max", "pids.max"),
}))
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon.start(tmp_path_factory.mktemp("cgroup-home"), config="concurrency = 4\n")
    yield d
    d.stop()


def _assert_alone(out: dict[str, Any], memory_mb: int, processes: int) -> None:
    """The looker's report: its own pid only, no group beneath its own, no host path,
    and its own limits where a runtime finds them."""
    listed = {pid for pids in out["seen"].values() if isinstance(pids, list) for pid in pids}
    assert listed == {out["pid"]}, out["seen"]  # itself, and no one else
    assert all(os.path.dirname(f) == "/sys/fs/cgroup" for f in out["folders"]), out["folders"]
    assert set(out["groups"].values()) == {"/"}, out["groups"]  # no host path, no daemon pid
    assert (out["memory"], out["pids"]) == (str(memory_mb * MIB), str(processes)), out


def _host_pids(pattern: str) -> set[int]:
    """Every pid the host's cgroup files under ``pattern`` list."""
    pids: set[int] = set()
    for path in Path("/sys/fs/cgroup").glob(pattern):
        pids |= {int(p) for p in path.read_text().split()}
    return pids


def _start(api: httpx.Client, tmp_path: Path, name: str, main: str, limits: dict[str, Any]) -> Any:
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp_path / name, main), tmp_path)
    body = {"input": {}, "configuration": {"limits": limits}}
    r = api.post(f"/v1/applications/{app_id}/runs", json=body)
    assert r.status_code == 201, r.text
    return app_id, r.json()["run_id"]


def test_a_model_sees_only_its_own_groups_and_its_own_limits(
    daemon: Daemon, tmp_path: Path
) -> None:
    with daemon.client() as api:
        holder_app, holder = _start(api, tmp_path, "holder", HOLDER, {})
        work = daemon.home / "runs" / holder / "work"
        holder_pid = int(wait_for(lambda: (work / "pid").exists() and (work / "pid").read_text()))
        try:
            # the targets are real: the daemon and the holder are listed in the host's groups
            assert daemon.process.pid in _host_pids("memory/**/cgroup.procs")
            assert holder_pid in _host_pids("**/orch-*/cgroup.procs")
            app_id, run_id = _start(
                api, tmp_path, "looker", LOOKER, {"memory_mb": 300, "processes": 64}
            )
            res = wait_run(api, app_id, run_id)
        finally:
            (work / "stop").write_text("")
        assert wait_run(api, holder_app, holder)["metadata"]["status_v2"] == "succeeded"
        health = api.get("/healthz").json()["isolation"]
    assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
    _assert_alone(res["output"], 300, 64)  # so neither the daemon nor the holder
    assert "cgroup-ns" in health["protections"] and "cgroup-ns" not in health["unavailable"]


@pytest.mark.parametrize("jail", ["direct", "no-zygote"])
def test_a_jail_made_for_its_run_shows_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jail: str
) -> None:
    """Made on the run's path (no standby ready), and by its own interpreter where the
    zygote cannot clone: that one builds the view itself, in its cgroup namespace."""
    sandbox = Sandbox(use_cgroups=True, standby=0)
    spawner, singles = sandbox._launcher.spawner, []
    single = spawner._single

    def counted(commands: int, report: int) -> Any:
        singles.append(commands)
        return single(commands, report)

    try:
        if jail == "no-zygote":
            monkeypatch.setattr(spawner, "_clone", lambda *_: None)
            monkeypatch.setattr(spawner, "_single", counted)
        (tmp_path / "model.py").write_text(LOOKER)
        spec = ProcessSpec(
            argv=[sys.executable, "model.py"], cwd=str(tmp_path), env={}, stdin=None,
            stdout=str(tmp_path / "out"), stderr=str(tmp_path / "err"),
            limits=Limits(memory_mb=200, processes=32), label=f"test-{uuid.uuid4().hex[:8]}",
        )  # fmt: skip

        async def run() -> int | None:
            return (await (await sandbox.start(spec)).wait()).exit_code

        assert asyncio.run(run()) == 0, (tmp_path / "err").read_text()
    finally:
        sandbox.close()
    assert len(singles) == (jail == "no-zygote")
    _assert_alone(json.loads((tmp_path / "out").read_text()), 200, 32)


# -- where the host refuses cgroup mounts ------------------------------------------------


def _refuse_cgroup_mounts(monkeypatch: pytest.MonkeyPatch) -> None:
    """This host (Linux 6.18) mounts every hierarchy even in a user namespace, so the
    refusal some kernels and LSM policies give is simulated: ``mount`` of a cgroup type
    fails with EPERM, every other mount is real."""
    real = sysc.mount

    def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = ""):
        if fstype in ("cgroup", "cgroup2"):
            raise OSError(errno.EPERM, f"mount {fstype} on {target}: Operation not permitted")
        real(source, target, fstype, flags, data)

    monkeypatch.setattr(sysc, "mount", mount)


def _in_view(plan: dict[str, Any]) -> dict[str, Any]:
    """Build ``plan``'s view in a child and say what its /sys/fs/cgroup holds."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        report: dict[str, Any] = {}
        try:
            enter_namespaces(user=False, net=False, ipc=False)
            View(plan).base(plan)
            report["entries"] = os.listdir("/sys/fs/cgroup")
            try:
                os.mkdir("/sys/fs/cgroup/planted")
            except OSError as exc:
                report["mkdir"] = exc.errno
        except BaseException as exc:
            report["error"] = repr(exc)
        os.write(write, json.dumps(report).encode())
        os._exit(0)
    os.close(write)
    data = os.read(read, 65536)
    os.close(read)
    os.waitpid(pid, 0)
    return dict(json.loads(data))


def test_where_cgroup_mounts_are_refused_the_view_masks_them_and_the_daemon_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = IsolationSettings()
    wanted = Isolation(("mount-ns", "proc-hidden", "cgroup-ns"))
    plan = jail_plan(wanted, config, None, 16, sys.executable)
    assert plan["cgroup_fs"], "the host's hierarchies are what the probe tries"
    _refuse_cgroup_mounts(monkeypatch)
    probe = zygote.probe(plan)
    monkeypatch.undo()
    assert probe["mount"] == "ok" and "Operation not permitted" in probe["cgroup_ns"]
    isolation = decide(config, probe, root=True)
    assert "cgroup-ns" not in isolation.to_dict()["protections"]
    assert "empty /sys/fs/cgroup" in isolation.unavailable["cgroup-ns"]
    assert "Operation not permitted" in isolation.unavailable["cgroup-ns"]
    masked = jail_plan(isolation, config, None, 16, sys.executable)
    assert (masked["cgroup_ns"], masked["cgroup_fs"]) == (False, [])
    assert os.listdir("/sys/fs/cgroup")  # the host's, which the view must not show
    assert _in_view(masked) == {"entries": [], "mkdir": errno.EROFS}
