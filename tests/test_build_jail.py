"""An environment build runs in the jail, not as the daemon: installing a requirement runs
its build code (here a local folder's PEP 517 backend), which must reach nothing of the
daemon's, and nothing of a build outlives a daemon killed during it."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import textwrap
import time
from pathlib import Path

import httpx
import psutil

from tests.conftest import MakeDaemon
from tests.dask_cluster import DaskCluster
from tests.helpers import Daemon, create_app, push_dir, run_and_wait, wait_for, write_app

MANIFEST = (
    "type: python\nruntime: ghcr.io/nextmv-io/runtime/python:3.11\n"
    "files: [main.py, requirements.txt]\npython:\n  pip-requirements: requirements.txt\n"
)
BACKEND = """
import base64, hashlib, json, os, socket, time, zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
NAME, VERSION = "{name}", "1.0"


def get_requires_for_build_wheel(config_settings=None):
    return []


def _read(path):
    try:
        with open(path, "rb") as fh:
            return fh.read(64).decode(errors="replace")
    except OSError as exc:
        return None


def _spy():
    with open(os.path.join(HERE, "targets.json")) as fh:
        targets = json.load(fh)
    got = {{name: _read(path) for name, path in targets["read"].items()}}
    try:
        with open(targets["write"], "w") as fh:
            fh.write("escaped")
        wrote = True
    except OSError:
        wrote = False
    try:
        socket.create_connection(("127.0.0.1", targets["port"]), timeout=5).close()
        network = True
    except OSError as exc:
        network = str(exc)
    report = {{
        "read": got, "wrote": wrote, "network": network, "uid": os.getuid(),
        "orch_vars": sorted(k for k in os.environ if k.startswith(("ORCH_", "NEXTMV_"))
                            and k != "ORCH_SANDBOX_TOKEN"),
    }}
    return report


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    flag = os.path.join(HERE, "..", "slow.flag")
    while NAME == "slowpkg" and os.path.exists(flag):
        time.sleep(0.2)
    report = _spy() if NAME == "spyorch" else {{}}
    info = f"{{NAME}}-{{VERSION}}.dist-info"
    meta = f"Metadata-Version: 2.1\\nName: {{NAME}}\\nVersion: {{VERSION}}\\n"
    wheel = "Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    files = {{
        f"{{NAME}}/__init__.py": f"REPORT = {{report!r}}\\n".encode(),
        f"{{info}}/METADATA": meta.encode(),
        f"{{info}}/WHEEL": wheel.encode(),
    }}
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{{path}},sha256={{digest}},{{len(data)}}")
    name = f"{{NAME}}-{{VERSION}}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as whl:
        for path, data in files.items():
            whl.writestr(path, data)
        whl.writestr(f"{{info}}/RECORD", "\\n".join([*record, f"{{info}}/RECORD,,"]) + "\\n")
    return name
"""


def pyproject(name: str) -> str:
    """A package whose build backend (``BACKEND``, as ``backend.py``) is its own."""
    return textwrap.dedent(f"""\
        [build-system]
        requires = []
        build-backend = "backend"
        backend-path = ["."]

        [project]
        name = "{name}"
        version = "1.0"
        """)


def local_package(libs: Path, name: str) -> Path:
    """A folder requirement whose build backend is in the folder itself."""
    folder = libs / name
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(pyproject(name))
    (folder / "backend.py").write_text(BACKEND.format(name=name))
    return folder


def push_requiring(api: httpx.Client, tmp: Path, requirement: Path, module: str) -> str:
    main = f"import json, {module}\nprint(json.dumps({module}.REPORT))\n"
    folder = write_app(tmp / f"app-{module}", main, MANIFEST)
    (folder / "requirements.txt").write_text(f"--no-index\n{requirement}\n")
    app_id = create_app(api)
    push_dir(api, app_id, folder, tmp)
    return app_id


def env_of(api: httpx.Client, app_id: str) -> dict[str, str]:
    env: dict[str, str] = api.get(f"/v1/applications/{app_id}/executable").json()["environment"]
    return env


def test_a_build_hook_reaches_nothing_of_the_daemon_and_the_build_works(
    make_daemon: MakeDaemon, tmp_path: Path, listener: int
) -> None:
    libs = tmp_path / "libs"
    spy = local_package(libs, "spyorch")
    d = make_daemon(config=f'[isolation]\nread_paths = ["{libs}"]\n')
    with d.client() as api:
        other = write_app(tmp_path / "other", "print('{}')  # other-app-token\n")
        other_id = create_app(api)
        other_exe = push_dir(api, other_id, other, tmp_path)["executable"]["id"]
        other_file = d.home / "executables" / other_exe / "main.py"
        assert "other-app-token" in other_file.read_text()
        escaped = tmp_path / "escaped.txt"
        targets = {
            "read": {
                "api_key": str(d.home / "api-key"),
                "db": str(d.home / "orch.db"),
                "other_package": str(other_file),
                "daemon_log": str(d.home / "daemon.log"),
            },
            "write": str(escaped),
            "port": listener,
        }
        (spy / "targets.json").write_text(json.dumps(targets))
        app_id = push_requiring(api, tmp_path, spy, "spyorch")
        wait_for(lambda: env_of(api, app_id)["status"] != "building", timeout=120, interval=0.2)
        assert env_of(api, app_id)["status"] == "ready", env_of(api, app_id)["message"]
        res = run_and_wait(api, app_id, {"input": {}})
        assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
    report = res["output"]
    assert report["read"] == dict.fromkeys(targets["read"]), report  # read nothing of them
    assert report["wrote"] is False and not escaped.exists()
    assert report["network"] is True  # the package index stays reachable
    assert report["orch_vars"] == []
    builds = httpx.get(f"{d.url}/healthz").json()["isolation"]["builds"]
    assert builds["network"] == "open"
    if os.geteuid() == 0:
        assert report["uid"] == builds["uid"] != 0  # never root
    logs = [p.read_text() for p in (d.home / "envs").glob("*/orch-build.log")]
    assert logs and not any(d.key in text or "other-app-token" in text for text in logs)


def build_processes(root: Path) -> list[psutil.Process]:
    """The installers building an env under ``root`` (a daemon's home, a worker's cache
    folder) and everything they started."""
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "pip" in cmdline and "install" in cmdline and f"{root}/envs/" in cmdline:
            found[proc.pid] = proc
            with contextlib.suppress(psutil.Error):
                found.update({c.pid: c for c in proc.children(recursive=True)})
    return list(found.values())


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def _age(proc: psutil.Process) -> float:
    """Seconds since it started: a hook that lives this long waits in ``build_wheel``."""
    try:
        return time.time() - proc.create_time()
    except psutil.Error:
        return 0.0


def _cwd(proc: psutil.Process) -> str | None:
    try:
        return proc.cwd()
    except psutil.Error:
        return None


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_a_daemon_killed_mid_build_leaves_no_installer_and_the_env_builds_again(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    libs = tmp_path / "libs"
    slow = local_package(libs, "slowpkg")
    flag = libs / "slow.flag"
    flag.write_text("sleep")
    config = f'[isolation]\nread_paths = ["{libs}"]\n'
    d = make_daemon(config=config)
    old: list[psutil.Process] = []
    try:
        with d.client() as api:
            app_id = push_requiring(api, tmp_path, slow, "slowpkg")

        def backend_sleeping() -> list[psutil.Process]:
            """The installers and the build backend, once it waits on the flag."""
            found = build_processes(d.home)
            backends = [p for p in found if _cwd(p) == str(slow) and _age(p) > 1.0]
            installers = [p for p in found if " pip install " in f" {_cmdline(p)} "]
            return installers + backends if backends else []

        old = wait_for(backend_sleeping, timeout=60, interval=0.2)
        d.kill()
        assert all(alive(p) for p in old), old  # the build outlived its daemon, for now
        again = make_daemon(config=config, home=d.home)
        wait_for(lambda: not any(alive(p) for p in old), timeout=15, interval=0.1)
        flag.unlink()  # the next build may finish
        with again.client() as api:
            wait_for(lambda: env_of(api, app_id)["status"] != "building", timeout=120, interval=0.2)
            assert env_of(api, app_id)["status"] == "ready", env_of(api, app_id)["message"]
            res = run_and_wait(api, app_id, {"input": {}})
            assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
        assert not build_processes(d.home)
    finally:
        flag.unlink(missing_ok=True)
        for proc in old:  # without the fix they outlive the test
            with contextlib.suppress(psutil.Error):
                proc.kill()


def test_a_cluster_daemon_builds_a_push_in_the_jail_too(tmp_path: Path, listener: int) -> None:
    """A daemon whose models run on Dask still builds a push's requirements (the push
    waits for them; each worker builds its own): that build ran as the daemon, unjailed."""
    cluster = DaskCluster.start(tmp_path / "cluster", workers=1, slots=1)
    try:
        libs = tmp_path / "libs"
        spy = local_package(libs, "spyorch")
        config = f'executor = "{cluster.executor}"\n[isolation]\nread_paths = ["{libs}"]\n'
        d = Daemon.start(tmp_path / "home", config=config)
        try:
            targets = {
                "read": {"api_key": str(d.home / "api-key"), "db": str(d.home / "orch.db")},
                "write": str(tmp_path / "escaped.txt"),
                "port": listener,
            }
            (spy / "targets.json").write_text(json.dumps(targets))
            with d.client() as api:
                app_id = push_requiring(api, tmp_path, spy, "spyorch")
                wait_for(lambda: env_of(api, app_id)["status"] != "building", timeout=120)
                assert env_of(api, app_id)["status"] == "ready", env_of(api, app_id)["message"]
        finally:
            d.stop()
        built = next((d.home / "envs").glob("*/lib/python*/site-packages/spyorch/__init__.py"))
        report = ast.literal_eval(built.read_text().split("=", 1)[1].strip())
        assert report["read"] == dict.fromkeys(targets["read"]), report
        assert report["wrote"] is False and report["network"] is True
        if os.geteuid() == 0:
            assert report["uid"] != 0
    finally:
        cluster.stop()
