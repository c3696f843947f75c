"""One app's environment build cannot poison another's: each app builds in a cache of its
own (``environments.app_cache``) into envs of its own, both gone with the app; and a Dask
worker builds as its daemon does (its memory and ``read_paths``), which /healthz shows.

A build hook is package code: it can rewrite what the build cache holds (wheels, built
artefacts), and the next build from that cache installs it. One cache for all apps let an
app's push put its code into the envs of the other apps."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import MakeDaemon
from tests.dask_cluster import DaskCluster
from tests.helpers import Daemon, create_app, push_dir, run_and_wait, wait_for, write_app
from tests.test_build_jail import BACKEND, env_of, pyproject

MANIFEST = (
    "type: python\nruntime: ghcr.io/nextmv-io/runtime/python:3.11\n"
    "files: [main.py, requirements.txt]\npython:\n  pip-requirements: requirements.txt\n"
)
HOOK = """

def _hook():
    \"\"\"Write each target of ``targets.json`` (beside this file); what could be written.\"\"\"
    try:
        with open(os.path.join(HERE, "targets.json")) as fh:
            targets = json.load(fh)
    except OSError:
        targets = {}
    wrote = {}
    for name, path in targets.get("write", {}).items():
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as fh:
                fh.write("poisoned")
            wrote[name] = True
        except OSError:
            wrote[name] = False
    if targets.get("hog_mb"):
        hog = b"x" * (targets["hog_mb"] * 1024 * 1024)
        wrote["hogged"] = len(hog)
    return wrote
"""
SPY_CALL = 'report = _spy() if NAME == "spyorch" else {}'
MAIN = "import json, sys\n{imports}print(json.dumps({{'prefix': sys.prefix, {reports}}}))\n"


def hook_package(libs: Path, name: str, targets: dict[str, Any] | None = None) -> Path:
    """A local folder requirement whose build backend runs ``HOOK`` on ``targets``."""
    backend = BACKEND.format(name=name)
    assert SPY_CALL in backend
    folder = libs / name
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(pyproject(name))
    (folder / "backend.py").write_text(backend.replace(SPY_CALL, "report = _hook()") + HOOK)
    (folder / "targets.json").write_text(json.dumps(targets or {}))
    return folder


def app_folder(tmp: Path, name: str, requirements: list[Path]) -> Path:
    """An app that prints its interpreter's prefix and the reports of its requirements."""
    modules = [r.name for r in requirements]
    main = MAIN.format(
        imports="".join(f"import {m}\n" for m in modules),
        reports=", ".join(f"{m!r}: {m}.REPORT" for m in modules),
    )
    folder = write_app(tmp / name, main, MANIFEST)
    lines = "".join(f"{r}\n" for r in requirements)
    (folder / "requirements.txt").write_text(f"--no-index\n{lines}")
    return folder


def push_built(api: httpx.Client, app_id: str, folder: Path, tmp: Path) -> str:
    """Push ``folder`` to ``app_id`` and wait for its environment; the executable's id."""
    exe: str = push_dir(api, app_id, folder, tmp)["executable"]["id"]
    wait_for(lambda: env_of(api, app_id)["status"] != "building", timeout=120, interval=0.2)
    assert env_of(api, app_id)["status"] == "ready", env_of(api, app_id)["message"]
    return exe


def output_of(api: httpx.Client, app_id: str) -> dict[str, Any]:
    res = run_and_wait(api, app_id, {"input": {}})
    assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
    output: dict[str, Any] = res["output"]
    return output


def test_a_build_hook_cannot_write_another_apps_cache_nor_a_shared_one(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    libs = tmp_path / "libs"
    plain = hook_package(libs, "plainpkg")
    d = make_daemon(config=f'[isolation]\nread_paths = ["{libs}"]\n')
    cache = d.home / "cache"
    with d.client() as api:
        victim = create_app(api)
        push_built(api, victim, app_folder(tmp_path, "victim", [plain]), tmp_path)
        targets = {
            "victim_cache": str(cache / "apps" / victim / "uv" / "poison"),
            "shared_cache": str(cache / "uv" / "poison"),
            "every_cache": str(cache / "apps" / "poison"),
            "home_cache": str(cache / "poison"),
        }
        hostile = hook_package(libs, "hostilepkg", {"write": targets})
        attacker = create_app(api)
        push_built(api, attacker, app_folder(tmp_path, "attacker", [hostile]), tmp_path)
        report = output_of(api, attacker)["hostilepkg"]
        assert report == dict.fromkeys(targets, False), report  # it wrote none of them
        assert not [p for p in cache.rglob("poison")]
        assert (cache / "apps" / victim / "uv").is_dir()  # each app's own cache
        assert (cache / "apps" / attacker / "uv").is_dir()
        # the victim's next build (a requirement more) works from its cache, unaffected
        more = hook_package(libs, "morepkg")
        push_built(api, victim, app_folder(tmp_path, "victim2", [plain, more]), tmp_path)
        out = output_of(api, victim)
        assert out["plainpkg"] == {} and out["morepkg"] == {}


def test_two_apps_of_one_package_get_an_env_each_and_an_apps_builds_go_with_it(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    """The same requirements, even the same package (one executable, by its bytes), build
    an env per app: one built from an app's cache is never another app's to run."""
    libs = tmp_path / "libs"
    plain = hook_package(libs, "plainpkg")
    d = make_daemon(config=f'[isolation]\nread_paths = ["{libs}"]\n')
    folder = app_folder(tmp_path, "same", [plain])
    with d.client() as api:
        first, second = create_app(api), create_app(api)
        exe = push_built(api, first, folder, tmp_path)
        assert push_built(api, second, folder, tmp_path) == exe  # one executable
        mine, theirs = output_of(api, first)["prefix"], output_of(api, second)["prefix"]
        assert mine != theirs, "two apps ran one env"
        assert Path(mine).parent == Path(theirs).parent == d.home / "envs"
        assert (d.home / "cache" / "apps" / first).is_dir()
        r = api.delete(f"/v1/applications/{first}")
        assert r.status_code in (200, 204), r.text
        assert not (d.home / "cache" / "apps" / first).exists()  # its cache went with it
        assert not Path(mine).exists()  # and its env
        assert (d.home / "cache" / "apps" / second).is_dir() and Path(theirs).is_dir()
        assert output_of(api, second)["prefix"] == theirs


def _builds_described(d: Daemon) -> dict[str, Any] | None:
    builds: dict[str, Any] = httpx.get(f"{d.url}/healthz").json()["isolation"]["builds"]
    return None if "unknown" in builds else builds


def test_what_builds_shared_between_apps_left_goes_at_start(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    """A home of a daemon of before per-app builds: its shared caches and the envs built
    from them go at the next start (unused, and possibly poisoned); the shared env of apps
    without requirements, and an app's own env, stay."""
    home = tmp_path / "home"
    envs = home / "envs"
    markers = {
        "old": {"requirements": ["six"], "python": sys.executable, "installer": "uv"},
        "shared": {"requirements": [], "python": sys.executable, "installer": "uv"},
        "own": {"requirements": ["six"], "python": sys.executable, "installer": "uv", "app": "a"},
    }
    for name, marker in markers.items():
        (envs / name).mkdir(parents=True)
        (envs / name / ".ready").write_text(json.dumps(marker))
    for tool in ("uv", "pip"):
        (home / "cache" / tool / "wheels").mkdir(parents=True)
    d = make_daemon(home=home)
    assert wait_for(lambda: not (envs / "old").exists(), timeout=10)
    assert (envs / "shared").is_dir() and (envs / "own").is_dir()
    assert not (home / "cache" / "uv").exists() and not (home / "cache" / "pip").exists()
    assert "shared between apps" in d.log()


def test_a_worker_builds_with_its_daemons_memory_and_read_paths(tmp_path: Path) -> None:
    """A worker's build read only what a default daemon's may (no ``read_paths``: a folder
    requirement the daemon allows failed there) with 4096 MB whatever the daemon's runs
    get; /healthz of a cluster's daemon did not say what builds run under."""
    cluster = DaskCluster.start(tmp_path / "cluster", workers=1, slots=1)
    try:
        libs = tmp_path / "libs"
        plain = hook_package(libs, "plainpkg")
        hog = hook_package(libs, "hogpkg", {"hog_mb": 600})
        config = (
            f'executor = "{cluster.executor}"\n[limits]\nmemory_mb = 256\n'
            f'[isolation]\nread_paths = ["{libs}"]\n'
        )
        d = Daemon.start(tmp_path / "home", config=config)
        try:
            with d.client() as api:
                reader = create_app(api)
                push_dir(api, reader, app_folder(tmp_path, "reader", [plain]), tmp_path)
                out = output_of(api, reader)  # built on the worker, reading the daemon's libs
                assert out["plainpkg"] == {} and sys.prefix not in out["prefix"]
                assert out["prefix"].startswith(str(cluster.workers[0].cache))
                hungry = create_app(api)
                push_dir(api, hungry, app_folder(tmp_path, "hungry", [hog]), tmp_path)
                res = run_and_wait(api, hungry, {"input": {}})
            error = res["metadata"]["error"]
            assert res["metadata"]["status_v2"] == "failed", res["output"]
            assert "on worker" in error and "memory limit (256 MB)" in error, error
            builds = wait_for(lambda: _builds_described(d), timeout=30, interval=0.2)
            assert builds["network"] == "open" and builds["protections"]
            if builds["uid"] is not None:
                assert builds["uid"] != 0
        finally:
            d.stop()
    finally:
        cluster.stop()
