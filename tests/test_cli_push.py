"""``orch app push`` is honest: it waits for the python environment the daemon builds
after the upload, and fails naming the requirement that could not be installed.
``--watch`` reports a failed push, the first one too, and goes on watching.

The failing requirement points at a local path that does not exist: the installer
refuses it at once, with no network involved.
"""

from __future__ import annotations

import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
import watchfiles

from orchestrator.cli import push as push_cli
from orchestrator.client import OrchClient
from tests.cli_run import CLI, ENV, new_app, orch, orch_json
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


# --watch


def test_watch_goes_on_after_a_first_push_that_fails(daemon: Daemon, tmp_path: Path) -> None:
    folder = write_app(tmp_path / "app", MAIN)
    manifest = (folder / "app.yaml").read_text()
    (folder / "app.yaml").write_text(manifest.replace("  - main.py\n", "  - main.py\n  - nope\n"))
    app_id = new_app(daemon)
    argv = [*CLI, "app", "push", "-a", app_id, "--watch", "--max-pushes", "1"]
    argv += ["--app-dir", str(folder), "--home", str(daemon.home)]
    err = tmp_path / "stderr"
    with err.open("w") as sink:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=sink, env=ENV, text=True)
    try:
        deadline = time.monotonic() + 30
        while "watching" not in err.read_text() and proc.poll() is None:
            assert time.monotonic() < deadline, err.read_text()
            time.sleep(0.1)
        edits = 0
        while proc.poll() is None and time.monotonic() < deadline:  # fixed, saved again and again
            edits += 1
            (folder / "app.yaml").write_text(f"{manifest}# fixed {edits}\n")
            time.sleep(0.3)
        assert proc.wait(timeout=10) == 0, err.read_text()
    finally:
        proc.kill()
    lines = err.read_text().splitlines()
    assert lines[0] == "error: app.yaml: files: pattern 'nope' matched nothing (still watching)"
    assert lines[1].startswith(f"watching {folder} for changes")
    assert any(line.startswith("pushed ") for line in lines[2:]), lines


def changes(*paths: Path) -> Iterator[set[tuple[watchfiles.Change, str]]]:
    """What ``watchfiles.watch`` yields, one save of each path: the watcher, made exact."""
    for path in paths:
        yield {(watchfiles.Change.modified, str(path))}


def test_watch_goes_on_after_a_file_changed_while_it_was_packaged(
    daemon: Daemon,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = write_app(tmp_path / "app", MAIN + "#" * 100_000 + "\n")
    app_id = new_app(daemon)
    add = tarfile.TarFile.addfile

    def shrink_once(tar: tarfile.TarFile, info: tarfile.TarInfo, fileobj: object = None) -> None:
        if info.name == "main.py" and not shrunk:
            shrunk.append(info.name)
            (folder / "main.py").write_text(MAIN)  # saved again, shorter, mid-packaging
        add(tar, info, fileobj)  # type: ignore[arg-type]

    shrunk: list[str] = []
    monkeypatch.setattr(tarfile.TarFile, "addfile", shrink_once)
    monkeypatch.setattr(watchfiles, "watch", lambda *_a, **_k: changes(folder / "main.py"))
    pusher = push_cli.Pusher(app_id, folder, wait=True, as_json=False)
    with OrchClient(daemon.url, daemon.key) as api:
        push_cli._watch(pusher, api, tmp_path, max_pushes=1)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "error: main.py changed while it was packaged; push again (still watching)"
    assert lines[2].startswith("pushed ") and len(lines) == 3, lines


def test_watch_says_so_when_a_fix_brings_back_the_package_pushed_last(
    daemon: Daemon,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Broken, then put back as it was: the package is the one pushed last, so nothing is
    pushed, and the error stayed the last line. Said once: an unchanged save says nothing."""
    folder = write_app(tmp_path / "app", MAIN)
    manifest = (folder / "app.yaml").read_text()
    broken = manifest.replace("  - main.py\n", "  - main.py\n  - nope\n")

    def saves() -> Iterator[set[tuple[watchfiles.Change, str]]]:
        for text in (broken, manifest, manifest):
            (folder / "app.yaml").write_text(text)
            yield from changes(folder / "app.yaml")

    monkeypatch.setattr(watchfiles, "watch", lambda *_a, **_k: saves())
    app_id = new_app(daemon)
    pusher = push_cli.Pusher(app_id, folder, wait=True, as_json=False)
    with OrchClient(daemon.url, daemon.key) as api:
        push_cli._watch(pusher, api, tmp_path, max_pushes=2)
        sha = api.apps.executable(app_id)["id"]
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"pushed {sha[:12]} to app {app_id}"), lines
    assert lines[1].startswith("watching ")
    assert lines[2] == "error: app.yaml: files: pattern 'nope' matched nothing (still watching)"
    assert lines[3:] == [
        f"unchanged: devint is still {sha[:12]} (the last push)",
        "stopped watching",
    ]


def test_ctrl_c_after_a_save_that_did_not_push_says_so_and_exits_1(
    daemon: Daemon,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """It exited 0 however the watching went: devint did not run what the folder holds."""
    folder = write_app(tmp_path / "app", MAIN)
    manifest = (folder / "app.yaml").read_text()

    def saves() -> Iterator[set[tuple[watchfiles.Change, str]]]:
        (folder / "app.yaml").write_text(manifest.replace("  - main.py\n", "  - nope\n"))
        yield from changes(folder / "app.yaml")
        raise KeyboardInterrupt

    monkeypatch.setattr(watchfiles, "watch", lambda *_a, **_k: saves())
    app_id = new_app(daemon)
    pusher = push_cli.Pusher(app_id, folder, wait=True, as_json=False)
    with OrchClient(daemon.url, daemon.key) as api:
        with pytest.raises(typer.Exit) as ended:
            push_cli._watch(pusher, api, tmp_path, max_pushes=None)
        sha = api.apps.executable(app_id)["id"]
    assert ended.value.exit_code == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == f"stopped watching; the last save did not push (devint still runs {sha[:12]})"
