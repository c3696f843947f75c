"""Isolation on other hosts: what is decided from what the host offers, and the fallbacks.

``decide`` is tried against the probe answers of hosts we do not have (no Landlock,
old ABIs, no namespaces). Then real daemons: a root daemon whose config leaves out
what it needs refuses runs at once, naming what is missing; and an unprivileged
daemon (started here as another uid, with the system's Python, so that its models
run as *its own* uid) keeps its key out of reach with a user namespace, or with
Landlock alone, and, with isolation switched off, demonstrably does not.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.config import IsolationSettings
from orchestrator.runs.isolation import decide
from scripts.bench.harness import published_info
from tests.conftest import MakeDaemon
from tests.helpers import (
    ROOT,
    Daemon,
    create_app,
    push_dir,
    run_and_wait,
    wait_for,
    write_app,
)
from tests.hostile import assert_blocked, hostile

FULL = {
    "landlock": 7, "mount": "ok", "proc_hidden": "ok", "cgroup_ns": "ok", "net_ns": "ok",
    "ipc_ns": "ok",
}  # fmt: skip
ALL_ROOT = [
    "landlock-fs", "landlock-net", "landlock-signal", "landlock-unix", "mount-ns",
    "proc-hidden", "cgroup-ns", "net-ns", "ipc-ns", "uid", "no-new-privs",
]  # fmt: skip


def settings(**values: Any) -> IsolationSettings:
    return IsolationSettings.from_dict(values)


def test_a_root_daemon_on_this_kind_of_host_gets_everything_it_names() -> None:
    every = decide(settings(use=["landlock", "mount-ns", "net-ns", "ipc-ns"]), FULL, root=True)
    assert list(every.protections) == ALL_ROOT
    assert every.refusal is None and every.uid_range == (2_000_000_000, 2_000_000_999)
    auto = decide(settings(), FULL, root=True)  # Landlock denies TCP: no network namespace
    assert list(auto.protections) == [p for p in ALL_ROOT if p != "net-ns"]
    assert "not needed" in auto.unavailable["net-ns"]


def test_without_landlock_tcp_rules_auto_takes_the_network_namespace() -> None:
    isolation = decide(settings(), FULL | {"landlock": 3}, root=True)
    assert "net-ns" in isolation.protections and "landlock-net" not in isolation.protections


def test_an_unprivileged_daemon_gets_no_uid_and_no_hidden_proc() -> None:
    isolation = decide(settings(), FULL, root=False)
    assert "uid" not in isolation.protections and "proc-hidden" not in isolation.protections
    assert {"landlock-fs", "mount-ns", "ipc-ns"} <= set(isolation.protections)
    assert isolation.refusal is None and isolation.uid_range is None


def test_older_landlock_abis_lose_what_they_lack() -> None:
    abi3 = decide(settings(), FULL | {"landlock": 3}, root=True)
    assert "landlock-fs" in abi3.protections
    assert not {"landlock-net", "landlock-signal"} & set(abi3.protections)
    assert "ABI 4" in abi3.unavailable["landlock-net"]
    abi5 = decide(settings(), FULL | {"landlock": 5}, root=False)
    assert "landlock-net" in abi5.protections and "landlock-signal" not in abi5.protections


def test_no_landlock_and_no_namespaces_is_refused_by_the_default_minimum() -> None:
    bare = {"landlock": 0, "mount": "Operation not permitted", "net_ns": "no", "ipc_ns": "no"}
    isolation = decide(settings(), bare, root=False)
    assert isolation.protections == ("no-new-privs",)
    assert isolation.refusal is not None and "require lists fs" in isolation.refusal
    assert "Operation not permitted" in isolation.refusal  # says why
    assert decide(settings(require=[]), bare, root=False).refusal is None  # explicitly allowed


def test_a_root_daemon_without_a_mount_namespace_never_runs_models() -> None:
    no_mount = FULL | {"mount": "Operation not permitted"}
    for isolation in (
        decide(settings(require=[]), no_mount, root=True),
        decide(settings(use=["landlock"], require=[]), FULL, root=True),
    ):
        assert isolation.refusal is not None and "runs as root" in isolation.refusal


def test_landlock_alone_meets_the_fs_requirement_for_an_unprivileged_daemon() -> None:
    isolation = decide(settings(use=["landlock"]), FULL, root=False)
    assert isolation.refusal is None
    assert list(isolation.protections) == [
        "landlock-fs", "landlock-net", "landlock-signal", "landlock-unix", "no-new-privs"
    ]  # fmt: skip
    assert "left out" in isolation.unavailable["mount-ns"]


def test_an_open_network_drops_the_network_protections() -> None:
    isolation = decide(settings(network="open"), FULL, root=True)
    assert not {"landlock-net", "net-ns"} & set(isolation.protections)


def test_models_see_their_own_cgroups_only_where_the_probe_could_mount_them() -> None:
    own = decide(settings(), FULL, root=True)
    assert "cgroup-ns" in own.protections and "cgroup-ns" not in own.unavailable
    refused = "mount cgroup on /sys/fs/cgroup/memory: Operation not permitted"
    masked = decide(settings(), FULL | {"cgroup_ns": refused}, root=True)
    assert "cgroup-ns" not in masked.protections and refused in masked.unavailable["cgroup-ns"]
    assert "empty /sys/fs/cgroup" in masked.unavailable["cgroup-ns"]
    assert set(own.protections) - set(masked.protections) == {"cgroup-ns"}
    assert masked.refusal is None  # it still runs
    landlock_only = decide(settings(use=["landlock"]), FULL, root=False)
    assert "cgroup-ns" not in landlock_only.protections
    assert "host's /sys/fs/cgroup" in landlock_only.unavailable["cgroup-ns"]


def test_require_names_single_protections_too() -> None:
    isolation = decide(settings(use=["landlock", "mount-ns"], require=["net-ns"]), FULL, root=True)
    assert isolation.refusal is not None and "require lists net-ns" in isolation.refusal


# -- a root daemon whose config cannot be met -------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a root daemon")
@pytest.mark.parametrize(
    ("config", "words"),
    [
        ('[isolation]\nuse = ["landlock"]\n', "runs as root"),
        ('[isolation]\nuse = ["landlock", "mount-ns"]\nrequire = ["net-ns"]\n', "net-ns"),
    ],
    ids=["landlock-only-as-root", "required-net-ns-left-out"],
)
def test_a_daemon_refuses_runs_when_its_minimum_is_not_met(
    make_daemon: MakeDaemon, tmp_path: Path, config: str, words: str
) -> None:
    d = make_daemon(config=config)
    health = httpx.get(d.url + "/healthz").json()["isolation"]
    assert health["refused"] is not None and words in health["refused"]
    assert "MODELS WILL NOT RUN" in d.log()
    with d.client() as api:
        app_id = create_app(api)
        push_dir(api, app_id, write_app(tmp_path / "m", "print('{}')\n"), tmp_path)
        res = run_and_wait(api, app_id, {"input": {}})
    meta = res["metadata"]
    assert meta["status_v2"] == "failed"
    assert meta["error"].startswith("could not start the model: ") and words in meta["error"]
    assert meta["duration"] < 1000


# -- an unprivileged daemon ---------------------------------------------------------------

UID = 54321
SYSTEM_PYTHON = "/usr/bin/python3"


def _system_python_matches() -> bool:
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    version = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return version == str(sys.version_info[:2])


unprivileged = pytest.mark.skipif(
    os.geteuid() != 0 or not _system_python_matches(),
    reason="needs root (to start a daemon as another uid) and a system python of our version",
)


@pytest.fixture
def start_unprivileged() -> Iterator[Any]:
    """Start a daemon as uid ``UID`` on the system's Python with our source and packages.

    Its home is outside pytest's private temporary folder, which that uid cannot reach.
    """
    started: list[tuple[Daemon, Path]] = []

    def start(config: str) -> Daemon:
        base = Path(tempfile.mkdtemp(prefix="orch-unprivileged-"))
        home = base / "home"
        home.mkdir()
        (home / "config.toml").write_text(config)
        for path in (base, home, home / "config.toml"):
            os.chown(path, UID, UID)
        site = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
        env = {"PATH": "/usr/bin:/bin", "HOME": str(base), "LANG": "C.UTF-8",
               "PYTHONPATH": f"{ROOT}:{site / 'site-packages'}"}  # fmt: skip
        argv = [SYSTEM_PYTHON, "-m", "orchestrator", "daemon", "run", "--home", str(home),
                "--port", "0"]  # fmt: skip
        log = (home / "daemon.log").open("ab")
        proc = subprocess.Popen(
            argv, env=env, stdout=log, stderr=log, user=UID, group=UID, extra_groups=[]
        )
        info = wait_for(lambda: published_info(home, proc), timeout=30)
        d = Daemon(home, proc, info["url"], (home / "api-key").read_text().strip())
        started.append((d, base))
        return d

    yield start
    for d, base in started:
        d.stop()
        shutil.rmtree(base, ignore_errors=True)


READ_KEY = 'return open(target["path"]).read()'
LIST_CGROUPS = """
if os.listdir("/sys/fs/cgroup"):
    return os.listdir("/sys/fs/cgroup")
return open("/sys/fs/cgroup/memory/cgroup.procs").read()
"""


def _attack_key(d: Daemon, tmp_path: Path) -> dict[str, Any]:
    with d.client() as api:
        return hostile(api, tmp_path, READ_KEY, {"path": str(d.home / "api-key")})


@unprivileged
def test_an_unprivileged_daemons_models_cannot_read_its_key(
    start_unprivileged: Any, tmp_path: Path
) -> None:
    d = start_unprivileged("")
    facts = httpx.get(d.url + "/healthz").json()["isolation"]
    assert facts["refused"] is None
    assert {"landlock-fs", "landlock-net", "mount-ns"} <= set(facts["protections"])
    assert "uid" not in facts["protections"]
    assert_blocked(_attack_key(d, tmp_path), d.key)
    with d.client() as api:
        body = 'os.kill(target["pid"], signal.SIGKILL)'
        assert_blocked(hostile(api, tmp_path, body, {"pid": d.process.pid}))
        body = "return open(f\"/proc/{target['pid']}/environ\").read()"
        assert_blocked(hostile(api, tmp_path, body, {"pid": d.process.pid}))
        assert os.listdir("/sys/fs/cgroup")  # the host's tree is real
        assert_blocked(hostile(api, tmp_path, LIST_CGROUPS, {}))
    assert "cgroup-ns" not in facts["protections"]  # no group of its own here: nothing to show
    assert "no per-run cgroup" in facts["unavailable"]["cgroup-ns"]
    assert d.process.poll() is None


@unprivileged
def test_landlock_alone_keeps_the_key_and_the_port_out_of_reach(
    start_unprivileged: Any, tmp_path: Path
) -> None:
    d = start_unprivileged('[isolation]\nuse = ["landlock"]\n')
    facts = httpx.get(d.url + "/healthz").json()["isolation"]
    assert facts["protections"] == [
        "landlock-fs", "landlock-net", "landlock-signal", "landlock-unix", "no-new-privs"
    ]  # fmt: skip
    assert_blocked(_attack_key(d, tmp_path), d.key)
    port = int(d.url.rsplit(":", 1)[1])
    with d.client() as api:
        body = 'return socket.create_connection(("127.0.0.1", target["port"]), timeout=5)'
        assert_blocked(hostile(api, tmp_path, body, {"port": port}))
        body = 'open(target["path"], "w").write("x")'
        assert_blocked(hostile(api, tmp_path, body, {"path": str(d.home / "planted")}))
        legit = "import json, sys, tempfile\nd = json.load(sys.stdin)\n"
        legit += "tempfile.TemporaryFile().write(b'x')\nprint(json.dumps({'n': d['n'] + 1}))\n"
        app_id = create_app(api)
        push_dir(api, app_id, write_app(tmp_path / "legit", legit), tmp_path)
        res = run_and_wait(api, app_id, {"input": {"n": 1}})
    assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
    assert res["output"] == {"n": 2}
    assert not (d.home / "planted").exists()


@unprivileged
def test_without_isolation_the_same_model_does_read_the_key(
    start_unprivileged: Any, tmp_path: Path
) -> None:
    """The control: the harness does see an escape when nothing stops it (and says so)."""
    d = start_unprivileged("[isolation]\nuse = []\nrequire = []\n")
    facts = httpx.get(d.url + "/healthz").json()["isolation"]
    assert facts["protections"] == ["no-new-privs"] and facts["refused"] is None
    assert "MODELS RUN UNPROTECTED" in d.log()
    report = _attack_key(d, tmp_path)
    assert report["escaped"] is True and d.key in report["got"]


@unprivileged
def test_no_isolation_with_the_default_minimum_refuses_runs(
    start_unprivileged: Any, tmp_path: Path
) -> None:
    d = start_unprivileged("[isolation]\nuse = []\n")
    with d.client() as api:
        app_id = create_app(api)
        push_dir(api, app_id, write_app(tmp_path / "m", "print('{}')\n"), tmp_path)
        meta = run_and_wait(api, app_id, {"input": {}})["metadata"]
    assert meta["status_v2"] == "failed"
    assert "require lists fs, which this host does not offer" in meta["error"]


THROUGH_A_STANDBY = """
standbys, last = 0, OSError(2, "no standby seen")
for name in os.listdir("/proc"):
    try:
        if name.isdigit() and int(name) != os.getpid() and b"zygote" in open(
            f"/proc/{name}/cmdline", "rb"
        ).read():
            standbys += 1
            return open(f"/proc/{name}/root/.src" + target["path"]).read()
    except OSError as exc:
        last = OSError(exc.errno, f"{standbys} standbys tried: {exc}")
raise last
"""


@unprivileged
@pytest.mark.parametrize("use", ['["mount-ns"]', '["mount-ns", "landlock"]'])
def test_a_waiting_standby_is_no_way_to_the_key(
    start_unprivileged: Any, tmp_path: Path, use: str
) -> None:
    """A standby waits with the host's tree under ``/.src``, as the daemon's uid, next to
    the model of another run: that model may see it in ``/proc`` but not enter its root."""
    d = start_unprivileged(f"[isolation]\nuse = {use}\n")
    with d.client() as api:
        report = hostile(api, tmp_path, THROUGH_A_STANDBY, {"path": str(d.home / "api-key")})
    assert_blocked(report, d.key)
    tried = re.search(r"(\d+) standbys tried", report["error"])
    assert tried is not None and int(tried.group(1)) >= 1, report  # else this proved nothing
