"""A Dask worker builds the environment a run needs in the jail, as the daemon does: the
build code of a requirement (here an sdist's PEP 517 backend, found offline through the
worker's ``UV_FIND_LINKS``) reaches nothing of the daemon's nor of the worker's, and
nothing of a build outlives a worker killed during it (its successor's sweep kills it)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from orchestrator.config import IsolationSettings
from tests.dask_cluster import DaskCluster
from tests.helpers import Daemon, create_app, push_dir, wait_for, wait_run, write_app
from tests.test_build_jail import BACKEND, alive, build_processes, pyproject

MANIFEST = (
    "type: python\nruntime: r\nfiles: [main.py, requirements.txt]\n"
    "python:\n  pip-requirements: requirements.txt\n"
)


def sdist(libs: Path, name: str, flag: Path, targets: dict[str, object] | None = None) -> Path:
    """``<name>-1.0.tar.gz`` in ``libs``, whose build backend is in the sdist itself; it
    waits while ``flag`` exists (in ``libs``: a build reads its find-links folder)."""
    backend = BACKEND.format(name=name).replace(
        'os.path.join(HERE, "..", "slow.flag")', repr(str(flag))
    )
    assert repr(str(flag)) in backend
    files = {
        "pyproject.toml": pyproject(name),
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        "backend.py": backend,
        "targets.json": json.dumps(targets or {}),
    }
    libs.mkdir(parents=True, exist_ok=True)
    path = libs / f"{name}-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for file, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-1.0/{file}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def push_requiring(api: httpx.Client, tmp: Path, module: str) -> str:
    main = f"import json, {module}\nprint(json.dumps({module}.REPORT))\n"
    folder = write_app(tmp / f"app-{module}", main, MANIFEST)
    (folder / "requirements.txt").write_text(f"--no-index\n{module}==1.0\n")
    app_id = create_app(api)
    push_dir(api, app_id, folder, tmp)
    return app_id


def start(api: httpx.Client, app_id: str) -> str:
    r = api.post(f"/v1/applications/{app_id}/runs", json={"input": {}})
    assert r.status_code in (200, 201, 202), r.text
    run_id: str = r.json()["run_id"]
    return run_id


@pytest.fixture
def libs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The offline index of the workers started after it: a folder of sdists."""
    folder = tmp_path / "libs"
    folder.mkdir()
    monkeypatch.setenv("UV_FIND_LINKS", str(folder))
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    return folder


@pytest.fixture
def cluster(libs: Path, tmp_path: Path) -> Iterator[DaskCluster]:
    c = DaskCluster.start(tmp_path / "cluster", workers=1, slots=1)
    yield c
    c.stop()


@pytest.fixture
def daemon(
    cluster: DaskCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Daemon]:
    """The daemon does not see the workers' index: what a build hook does is a worker's."""
    with monkeypatch.context() as env:
        env.delenv("UV_FIND_LINKS")
        env.delenv("PIP_FIND_LINKS")
        d = Daemon.start(tmp_path / "home", config=f'executor = "{cluster.executor}"\n')
    yield d
    d.stop()


def test_a_build_hook_on_a_worker_reaches_nothing_and_the_run_succeeds(
    daemon: Daemon, cluster: DaskCluster, libs: Path, tmp_path: Path, listener: int
) -> None:
    worker = cluster.workers[0]
    with daemon.client() as api:
        other_id = create_app(api)
        other_app = write_app(tmp_path / "other", "print('{}')  # other-tok\n")
        push_dir(api, other_id, other_app, tmp_path)
        first = wait_run(api, other_id, start(api, other_id), timeout=120)
        assert first["metadata"]["status_v2"] == "succeeded", first["metadata"]["error"]
        other = next(
            p for p in worker.cache.glob("executables/*/main.py") if "other-tok" in p.read_text()
        )
        planted = worker.cache / "planted.txt"
        planted.write_text("worker-secret")
        scratch = cluster.root / "scratch-w0" / "planted.txt"
        scratch.write_text("scratch-secret")
        escaped = worker.cache / "escaped.txt"
        targets = {
            "read": {
                "api_key": str(daemon.home / "api-key"),
                "db": str(daemon.home / "orch.db"),
                "other_package": str(other),
                "worker_cache": str(planted),
                "worker_scratch": str(scratch),
                "worker_log": str(worker.log),
            },
            "write": str(escaped),
            "port": listener,
        }
        sdist(libs, "spyorch", libs / "slow.flag", targets)
        app_id = push_requiring(api, tmp_path, "spyorch")
        res = wait_run(api, app_id, start(api, app_id), timeout=240)
        assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
    report = res["output"]
    assert report["read"] == dict.fromkeys(targets["read"]), report  # read nothing of them
    assert report["wrote"] is False and not escaped.exists()
    assert report["network"] is True  # the package index stays reachable
    assert report["orch_vars"] == []
    if os.geteuid() == 0:
        config = IsolationSettings()
        assert report["uid"] == config.uid_base + config.uid_count != 0  # the builds' uid
    # its cache is the worker's (the daemon builds the push in a cache of its own, and,
    # without the worker's find-links, fails: what ran the model is the worker's build)
    assert list(worker.cache.glob("cache/apps/*/*/uv"))  # its daemon's, its app's
    assert not list((daemon.home / "cache").glob("**/spyorch*.whl"))
    logs = [p.read_text() for p in worker.cache.glob("envs/*/orch-build.log")]
    assert logs and not any("worker-secret" in text or "other-tok" in text for text in logs)


def _hook_waiting(cache: Path) -> Callable[[], list[psutil.Process]]:
    def found() -> list[psutil.Process]:
        procs = build_processes(cache)
        hooks = [p for p in procs if "pip install" not in " ".join(p.cmdline())]
        old = [p for p in hooks if time.time() - p.create_time() > 1.0]
        return procs if old else []

    return found


def test_a_worker_killed_mid_build_leaves_nothing_of_it_to_its_successor(
    daemon: Daemon, cluster: DaskCluster, libs: Path, tmp_path: Path
) -> None:
    worker = cluster.workers[0]
    flag = libs / "slow.flag"
    flag.write_text("sleep")
    sdist(libs, "slowpkg", flag)
    old: list[psutil.Process] = []
    try:
        with daemon.client() as api:
            app_id = push_requiring(api, tmp_path, "slowpkg")
            start(api, app_id)
            old = wait_for(_hook_waiting(worker.cache), timeout=120, interval=0.2)
            worker.kill()
            assert all(alive(p) for p in old), old  # the build outlived its worker, for now
            cluster.add_worker("w1", slots=1, cache=worker.cache)  # sweeps its predecessor
            wait_for(lambda: not any(alive(p) for p in old), timeout=20, interval=0.1)
            flag.unlink()  # the next build may finish
            res = wait_run(api, app_id, start(api, app_id), timeout=240)
            assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
    finally:
        flag.unlink(missing_ok=True)
        for proc in old:  # without the fix they outlive the test
            with contextlib.suppress(psutil.Error):
                proc.kill()
