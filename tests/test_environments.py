"""Python environments: built at push time per requirements set, awaited by runs."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import MakeDaemon
from tests.helpers import (
    Daemon,
    create_app,
    push_dir,
    run_and_wait,
    wait_for,
    wait_run,
    write_app,
)

MAIN = "import json, sys, six\nprint(json.dumps({'six': six.__version__, 'prefix': sys.prefix}))\n"


MANIFEST = (
    "type: python\nruntime: ghcr.io/nextmv-io/runtime/python:3.11\n"
    "files: [main.py, requirements.txt]\npython:\n  pip-requirements: requirements.txt\n"
)


def deploy(api: httpx.Client, tmp: Path, requirements: str) -> str:
    folder = write_app(tmp / requirements.replace("=", "-"), MAIN, MANIFEST)
    (folder / "requirements.txt").write_text(requirements + "\n")
    app_id = create_app(api)
    push_dir(api, app_id, folder, tmp)
    return app_id


def env_status(api: httpx.Client, app_id: str) -> str:
    return str(api.get(f"/v1/applications/{app_id}/executable").json()["environment"]["status"])


@pytest.fixture(scope="module")
def daemon_envs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon with ``python_envs = "daemon"``, for the two tests of that setting (each
    on apps of its own): one start for both."""
    d: Daemon = Daemon.start(
        tmp_path_factory.mktemp("daemon-envs"), config='python_envs = "daemon"\n'
    )
    yield d
    d.stop()


def test_requirements_get_their_own_environment(api: httpx.Client, tmp_path: Path) -> None:
    app_id = deploy(api, tmp_path, "six==1.16.0")
    assert env_status(api, app_id) in ("building", "ready")
    res = run_and_wait(api, app_id, {"input": {}}, timeout=300)  # waits for the build
    assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
    assert res["output"]["six"] == "1.16.0"
    assert res["output"]["prefix"] != sys.prefix  # not the daemon's interpreter
    assert env_status(api, app_id) == "ready"


def test_a_failed_build_fails_its_runs_with_the_installer_message(
    api: httpx.Client, tmp_path: Path
) -> None:
    app_id = deploy(api, tmp_path, "this-package-does-not-exist-orch==0.0.1")
    wait_for(lambda: env_status(api, app_id) == "failed", timeout=300, interval=0.2)
    exe = api.get(f"/v1/applications/{app_id}/executable").json()
    assert "this-package-does-not-exist-orch" in exe["environment"]["message"]
    res = run_and_wait(api, app_id, {"input": {}})
    assert res["metadata"]["status_v2"] == "failed"
    assert "python environment failed to build" in res["metadata"]["error"]


def test_a_queued_run_staged_on_a_failed_build_fails_the_same_way(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    """The run next in line is staged ahead of its slot; a stage that fails (here: its
    environment) fails that run when the slot comes, with the same message, and the
    slot moves on."""
    d = make_daemon(config="concurrency = 1\n")
    with d.client() as api:
        broken = deploy(api, tmp_path, "this-package-does-not-exist-orch==0.0.1")
        wait_for(lambda: env_status(api, broken) == "failed", timeout=300, interval=0.2)
        sleeper = create_app(api)
        sleep_main = "import time\ntime.sleep(1)\nprint('{}')\n"
        push_dir(api, sleeper, write_app(tmp_path / "sleeper", sleep_main), tmp_path)
        runs = [
            api.post(f"/v1/applications/{app}/runs", json={"input": {}}).json()["run_id"]
            for app in (sleeper, broken, sleeper)
        ]
        first, queued, last = (
            wait_run(api, app, run_id)["metadata"]
            for app, run_id in zip((sleeper, broken, sleeper), runs, strict=True)
        )
        assert queued["status_v2"] == "failed"
        assert "python environment failed to build" in queued["error"]
        assert first["status_v2"] == last["status_v2"] == "succeeded"
        assert queued["started_at"] > first["started_at"]  # it did wait for the slot


def test_daemon_interpreter_setting_skips_environments(daemon_envs: Daemon, tmp_path: Path) -> None:
    with daemon_envs.client() as api:
        app_id = deploy(api, tmp_path, "this-package-does-not-exist-orch==0.0.1")
        assert env_status(api, app_id) == "none"
        res = run_and_wait(api, app_id, {"input": {}})
        # six is not installed next to the daemon: the model runs, on the daemon's python.
        assert res["metadata"]["status_v2"] == "failed"
        assert "No module named 'six'" in res["metadata"]["error"]


SHARED_MAIN = """\
import importlib.util, json, sys
import nextmv
print(json.dumps({
    "prefix": sys.prefix,
    "nextmv": nextmv.__version__,
    "orchestrator": importlib.util.find_spec("orchestrator") is not None,
}))
"""


def test_an_app_without_requirements_runs_in_the_shared_environment(
    api: httpx.Client, tmp_path: Path
) -> None:
    """It imports the daemon's packages, as it always did, from an interpreter of its own
    that skips the daemon's start-up (the editable install's finder): orch itself is not
    importable there."""
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp_path / "shared", SHARED_MAIN), tmp_path)
    first, second = (run_and_wait(api, app_id, {"input": {}}) for _ in "ab")
    for res in (first, second):
        assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
    out = first["output"]
    assert out["prefix"] != sys.prefix and out["prefix"] == second["output"]["prefix"]
    assert Path(out["prefix"]).parent.name == "envs"  # in the daemon's home, built once
    assert out["nextmv"] and out["orchestrator"] is False
    assert env_status(api, app_id) == "none"  # nothing of the app's own was built


def test_daemon_interpreter_setting_runs_apps_without_requirements_there_too(
    daemon_envs: Daemon, tmp_path: Path
) -> None:
    with daemon_envs.client() as api:
        app_id = create_app(api)
        push_dir(api, app_id, write_app(tmp_path / "shared", SHARED_MAIN), tmp_path)
        res = run_and_wait(api, app_id, {"input": {}})
        assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
        assert res["output"]["prefix"] == sys.prefix


def test_a_push_directory_package_says_how_its_environment_went(
    daemon: Daemon, api: httpx.Client, tmp_path: Path
) -> None:
    """The push directory has no terminal to say it on: a package's reason in ``.done/``
    says its environment is being built, then that it is ready, or that it failed and
    with what (it was pushed either way: devint runs it)."""
    done = {}
    for requirement in ("six==1.16.0", "this-package-does-not-exist-orch==0.0.1"):
        app_id = create_app(api)
        folder = write_app(tmp_path / app_id, MAIN, MANIFEST)
        (folder / "requirements.txt").write_text(requirement + "\n")
        inbox = daemon.home / "push" / app_id
        os.rename(folder, inbox / "app")
        done[requirement] = inbox / ".done"
    for requirement, folder in done.items():
        reason = wait_for(lambda f=folder: _settled_reason(f), timeout=300, interval=0.2)
        if requirement.startswith("six"):
            assert reason == "pushed; its python environment is ready\n"
        else:
            assert reason.startswith("pushed, but its python environment failed")
            assert "this-package-does-not-exist-orch" in reason


def _settled_reason(done: Path) -> str | None:
    """The one reason in ``done`` once it no longer says the environment is being built."""
    reasons = list(done.glob("*.reason"))
    text = reasons[0].read_text() if reasons else ""
    return text if text and "being built" not in text else None
