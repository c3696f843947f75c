"""``orch app push`` is honest: it waits for the python environment the daemon builds
after the upload, and fails naming the requirement that could not be installed.

The failing requirement points at a local path that does not exist: the installer
refuses it at once, with no network involved.
"""

from __future__ import annotations

from pathlib import Path

from tests.cli_run import new_app, orch, orch_json
from tests.helpers import Daemon, write_app

MANIFEST = (
    "type: python\nruntime: ghcr.io/nextmv-io/runtime/python:3.11\n"
    "files: [main.py, requirements.txt]\npython:\n  pip-requirements: requirements.txt\n"
)
MAIN = "import json, sys\njson.dump(json.load(sys.stdin), sys.stdout)\n"
MISSING = "orch-missing @ file:///nonexistent/orch-missing"


def app_with(tmp_path: Path, requirements: str) -> Path:
    folder = write_app(tmp_path / "app", MAIN, MANIFEST)
    (folder / "requirements.txt").write_text(requirements)
    return folder


def test_push_fails_naming_the_requirement_that_cannot_be_installed(
    daemon: Daemon, tmp_path: Path
) -> None:
    folder = app_with(tmp_path, f"# the one that breaks\n{MISSING}\n")
    app_id = new_app(daemon)
    proc = orch(daemon, f"app push -a {app_id} --app-dir", folder, code=1)
    assert f"requirement {MISSING!r} could not be installed" in proc.stderr, proc.stderr
    assert "Distribution not found" in proc.stderr  # the installer's own words follow
    assert "devint now runs it" in proc.stderr  # the push itself did land
    assert "failed: " in orch(daemon, f"app get -a {app_id}").stdout
    orch(daemon, f"app version create -a {app_id} -v v1")
    version = orch_json(daemon, f"app version get -a {app_id} -v v1")
    assert version["executable"]["environment"]["status"] == "failed"
    assert "environment    failed: " in orch(daemon, f"app version get -a {app_id} -v v1").stdout


def test_no_wait_returns_while_the_environment_builds(daemon: Daemon, tmp_path: Path) -> None:
    app_id = new_app(daemon)
    proc = orch(daemon, f"app push -a {app_id} --no-wait --app-dir", app_with(tmp_path, MISSING))
    assert "still building (--no-wait)" in proc.stderr


def test_push_waits_until_the_environment_is_ready(daemon: Daemon, tmp_path: Path) -> None:
    app_id = new_app(daemon)
    folder = app_with(tmp_path, "# nothing to install: an environment of its own all the same\n")
    proc = orch(daemon, f"app push -a {app_id} --app-dir", folder)
    assert "its python environment is ready" in proc.stderr
    assert (
        orch_json(daemon, f"app push -a {app_id} --app-dir", folder)["executable"]["environment"][
            "status"
        ]
        == "ready"
    )
    out = orch(daemon, f"app run -a {app_id} -w", stdin='{"ok": true}').stdout
    assert out.strip() == '{"ok": true}'
