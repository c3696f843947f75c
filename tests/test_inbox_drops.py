"""The push directory never ignores a drop without a word, and ``orch app push --watch``
never watches for an app that does not exist.

A folder in ``push/<app>/`` whose ``app.yaml`` comes after it is pushed once it does; a
file straight in ``push/`` (which app?) and a folder with no ``app.yaml`` say why they are
not pushed in a ``.reason`` beside them. The daemon here settles in 0.5 s, not 2 s
(``inbox_quiet.SETTLE_SECONDS``): the same code path, a shorter wait.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
import watchfiles

from orchestrator.cli import push as push_cli
from orchestrator.client import OrchClient
from orchestrator.inbox_kinds import PACKAGE_HELP
from orchestrator.inbox_unpushed import ASTRAY, BARE
from orchestrator.packaging.build import build_package
from tests.cli_run import CLI, ENV, new_app
from tests.conftest import MakeDaemon
from tests.helpers import SAMPLES, Daemon, create_app, unique, wait_for, with_constants, write_app

SETTLE = 0.5
FAST = with_constants({"orchestrator.inbox_quiet.SETTLE_SECONDS": SETTLE})
ECHO = SAMPLES / "shell-echo"


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon.start(tmp_path_factory.mktemp("home"), launcher=FAST)
    yield d
    d.stop()


def current(api: httpx.Client, app_id: str) -> str | None:
    r = api.get(f"/v1/applications/{app_id}/executable")
    return r.json()["id"] if r.status_code == 200 else None


def pushes(api: httpx.Client, app_id: str) -> list[str]:
    moves = api.get(f"/v1/applications/{app_id}/history").json()["items"]
    return [m["to"] for m in moves if m["pointer"] == "devint"]


def said(path: Path) -> str | None:
    """What the ``.reason`` beside ``path`` says, if there is one."""
    try:
        return Path(f"{path}.reason").read_text()
    except FileNotFoundError:
        return None


def sha_of(folder: Path, tmp_path: Path) -> str:
    return build_package(folder, tmp_path / f"{unique('expected')}.tar.gz").sha256


def test_a_folder_whose_app_yaml_comes_later_is_pushed_once_it_does(
    fast: Daemon, tmp_path: Path
) -> None:
    """Seen without app.yaml, the folder was passed over for good: its app.yaml coming
    later (or touched) never pushed it, until the daemon restarted; nothing said why."""
    with fast.client() as api:
        app_id = create_app(api)
        pkg = fast.home / "push" / app_id / "pkg"
        pkg.mkdir()
        shutil.copy(ECHO / "main", pkg / "main")
        assert wait_for(lambda: said(pkg), timeout=5) == BARE + "\n"
        assert current(api, app_id) is None
        shutil.copy(ECHO / "app.yaml", pkg / "app.yaml")
        sha = wait_for(lambda: current(api, app_id), timeout=5)
        assert sha == sha_of(ECHO, tmp_path)
        done = wait_for(lambda: list((pkg.parent / ".done").glob("*-pkg")))
        assert said(done[0]) == "pushed\n"
        assert not pkg.exists() and said(pkg) is None  # its waiting reason went with it


def test_a_folder_made_in_place_is_pushed_once_it_has_settled(fast: Daemon, tmp_path: Path) -> None:
    """Like a package written in place, a folder still being written waits: it was pushed
    (when its app.yaml came first) with whatever it held by then."""
    with fast.client() as api:
        app_id = create_app(api)
        pkg = fast.home / "push" / app_id / "pkg"
        pkg.mkdir()
        shutil.copy(ECHO / "app.yaml", pkg / "app.yaml")
        main = (ECHO / "main").read_text()
        for edit in range(5):  # still being written, for longer than the settle time
            (pkg / "main").write_text(f"{main}# edit {edit}\n")
            (pkg / "main").chmod(0o755)
            time.sleep(SETTLE / 2)
            assert current(api, app_id) is None
        expected = shutil.copytree(pkg, tmp_path / "expected")
        wait_for(lambda: current(api, app_id), timeout=5)
        assert pushes(api, app_id) == [sha_of(expected, tmp_path)]  # once, and whole


def test_a_folder_without_app_yaml_names_the_packages_put_in_it(fast: Daemon) -> None:
    """``push/<app>/deep/sub/p.tgz`` was never pushed nor explained."""
    with fast.client() as api:
        app_id = create_app(api)
        app = fast.home / "push" / app_id
        deep = app / "deep"
        (deep / "sub").mkdir(parents=True)
        (deep / "sub" / "p.tgz").write_bytes(b"a package, one folder too deep")
        reason = wait_for(lambda: said(deep), timeout=5)
        assert reason == (
            f"{BARE}; a package is pushed only straight from its app's folder, not from a "
            f"folder in it: move 'deep/sub/p.tgz' into push/{app_id}/\n"
        )
        wait_for(
            lambda: "deep is not pushed yet: it waits for an app.yaml" in fast.log()
        )  # logged after the reason is written
        shutil.rmtree(deep)
        wait_for(lambda: said(deep) is None, timeout=5)  # gone with its folder
        assert current(api, app_id) is None and not (app / ".rejected").exists()


def test_a_file_straight_in_push_says_where_it_belongs(fast: Daemon, tmp_path: Path) -> None:
    """``push/direct.tgz`` was neither pushed nor explained. Dot files and temp names
    there stay ignored, as in an app's folder."""
    root = fast.home / "push"
    with fast.client() as api:
        app_id = create_app(api)
        package = build_package(ECHO, tmp_path / "echo.tar.gz")
        ignored = [root / ".hidden.tgz", root / "half.tgz.part", root / "editing.txt~"]
        for path in ignored:
            path.write_bytes(b"not yet")
        shutil.copy(package.path, root / ".direct.tgz.tmp")
        os.rename(root / ".direct.tgz.tmp", root / "direct.tgz")
        (root / "notes.txt").write_text("not a package either")
        assert wait_for(lambda: said(root / "direct.tgz"), timeout=5) == ASTRAY + "\n"
        assert wait_for(lambda: said(root / "notes.txt")) == f"{ASTRAY} ({PACKAGE_HELP})\n"
        assert all(said(path) is None for path in ignored)
        wait_for(
            lambda: "push/direct.tgz is not pushed: push/ holds one folder per app" in fast.log()
        )  # logged after the reason is written
        assert current(api, app_id) is None and (root / "direct.tgz").exists()
        os.rename(root / "direct.tgz", root / app_id / "direct.tgz")  # where it belongs
        wait_for(lambda: current(api, app_id) == package.sha256, timeout=5)
        wait_for(lambda: said(root / "direct.tgz") is None)
        for path in [*ignored, root / "notes.txt"]:
            path.unlink()


def test_a_reason_left_beside_what_went_while_the_daemon_was_down_goes(
    make_daemon: MakeDaemon,
) -> None:
    d = make_daemon(launcher=FAST)
    stray = d.home / "push" / "stray.tgz"
    stray.write_bytes(b"for which app?")
    wait_for(lambda: said(stray), timeout=5)
    own = d.home / "push" / "mine.reason"  # a file of the user's: not orch's to remove
    d.stop()
    stray.unlink()
    own.write_text("my own notes")
    again = make_daemon(home=d.home, launcher=FAST)
    wait_for(lambda: said(stray) is None, timeout=5)
    assert own.read_text() == "my own notes"
    again.stop()


# orch app push --watch


def test_watch_with_an_unknown_app_exits_1_at_once(daemon: Daemon, tmp_path: Path) -> None:
    """It said ``error: app 'nope' not found (still watching)`` and watched for ever,
    though no save can fix an app ID (the broken manifest here came first, then)."""
    folder = write_app(tmp_path / "app", "print('hi')\n")
    manifest = (folder / "app.yaml").read_text()
    (folder / "app.yaml").write_text(manifest.replace("  - main.py\n", "  - nope\n"))
    app_id = unique("nope")
    argv = [*CLI, "app", "push", "-a", app_id, "--watch", "--app-dir", str(folder)]
    argv += ["--home", str(daemon.home)]
    proc = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=ENV, timeout=20
    )
    assert (proc.returncode, proc.stderr) == (1, f"error: app {app_id!r} not found\n")


def test_watch_ends_when_its_app_is_deleted(
    daemon: Daemon,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = write_app(tmp_path / "app", "print('hi')\n")
    app_id = new_app(daemon)

    def saves() -> Iterator[set[tuple[watchfiles.Change, str]]]:
        with OrchClient(daemon.url, daemon.key) as other:
            other.apps.delete(app_id)
        (folder / "main.py").write_text("print('saved after the app went')\n")
        yield {(watchfiles.Change.modified, str(folder / "main.py"))}
        raise AssertionError("still watching an app that is gone")

    monkeypatch.setattr(watchfiles, "watch", lambda *_a, **_k: saves())
    pusher = push_cli.Pusher(app_id, folder, wait=True, as_json=False)
    with OrchClient(daemon.url, daemon.key) as api, pytest.raises(typer.Exit) as ended:
        push_cli._watch(pusher, api, tmp_path, max_pushes=None)
    assert ended.value.exit_code == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("pushed ") and lines[1].startswith("watching ")
    assert lines[2:] == [f"error: app {app_id!r} not found (stopped watching)"]


def test_an_apps_own_folder_dropped_as_the_app_folder_says_to_go_one_level_down(
    fast: Daemon,
) -> None:
    """``cp -r myapp/. push/<app>/``: its files arrive one by one, each refused as no
    package; the reason now says where the folder belongs."""
    with fast.client() as api:
        app_id = create_app(api)
    app_dir = fast.home / "push" / app_id
    app_dir.mkdir(exist_ok=True)
    shutil.copytree(ECHO, app_dir, dirs_exist_ok=True)
    rejected = app_dir / ".rejected"
    hint = f"an app's folder is put whole inside push/{app_id}/ (push/{app_id}/<folder>/app.yaml)"

    def reasons() -> list[str]:
        found = sorted(rejected.glob("*.reason")) if rejected.is_dir() else []
        return [p.read_text() for p in found]

    said_all = wait_for(lambda: len(reasons()) == len(list(ECHO.iterdir())) and reasons())
    assert all("it is not a package" in r and hint in r for r in said_all), said_all
