"""The push directory: packages dropped into push/<app>/ move devint."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import httpx

from orchestrator.home import Home
from orchestrator.inbox import DISK_TRIES, Inbox
from orchestrator.packaging.build import build_package
from tests.conftest import MakeDaemon
from tests.helpers import SAMPLES, Daemon, create_app, wait_for


def current(api: httpx.Client, app_id: str) -> str | None:
    r = api.get(f"/v1/applications/{app_id}/executable")
    return r.json()["id"] if r.status_code == 200 else None


def package(tmp: Path, sample: str) -> tuple[Path, str]:
    built = build_package(SAMPLES / sample, tmp / f"{sample}.tar.gz")
    return built.path, built.sha256


def test_renamed_package_moves_devint_within_a_second(
    api: httpx.Client, daemon: Daemon, tmp_path: Path
) -> None:
    home = daemon.home
    app_id = create_app(api)
    path, sha = package(tmp_path, "knapsack")
    inbox = home / "push" / app_id
    staged = inbox / "upload.tar.gz.tmp"  # temp names are ignored
    staged.write_bytes(path.read_bytes())
    time.sleep(0.3)
    assert current(api, app_id) is None
    start = time.monotonic()
    os.rename(staged, inbox / "knapsack.tar.gz")
    wait_for(lambda: current(api, app_id) == sha, timeout=1.0)
    assert time.monotonic() - start < 1.0
    moves = api.get(f"/v1/applications/{app_id}/history").json()["items"]
    assert moves[0]["pointer"] == "devint" and moves[0]["to"] == sha
    done = wait_for(lambda: list((inbox / ".done").glob("*knapsack.tar.gz")))
    assert not (inbox / "knapsack.tar.gz").exists() and done


def test_half_written_package_waits_until_complete(
    api: httpx.Client, daemon: Daemon, tmp_path: Path
) -> None:
    home = daemon.home
    app_id = create_app(api)
    path, sha = package(tmp_path, "shell-echo")
    data = path.read_bytes()
    target = home / "push" / app_id / "echo.tar.gz"
    with target.open("wb") as fh:
        fh.write(data[: len(data) // 2])
        fh.flush()
        time.sleep(0.8)
        assert current(api, app_id) is None
        assert not (target.parent / ".rejected").exists()
        fh.write(data[len(data) // 2 :])
    wait_for(lambda: current(api, app_id) == sha, timeout=5)


def test_broken_package_is_moved_aside_with_a_reason(
    api: httpx.Client, daemon: Daemon, tmp_path: Path
) -> None:
    home = daemon.home
    app_id = create_app(api)
    staged = tmp_path / "junk.tar.gz"
    staged.write_bytes(b"not a tarball at all")
    os.utime(staged, (time.time() - 60, time.time() - 60))  # old: not being written
    os.rename(staged, home / "push" / app_id / "junk.tar.gz")
    rejected = home / "push" / app_id / ".rejected"
    reasons = wait_for(lambda: list(rejected.glob("*.reason")), timeout=5)
    assert "not a tar.gz" in reasons[0].read_text()
    assert current(api, app_id) is None


def test_folder_with_app_yaml_is_packaged(
    api: httpx.Client, daemon: Daemon, tmp_path: Path
) -> None:
    home = daemon.home
    app_id = create_app(api)
    folder = tmp_path / "echo"
    folder.mkdir()
    for name in ("app.yaml", "main"):
        (folder / name).write_bytes((SAMPLES / "shell-echo" / name).read_bytes())
    (folder / "main").chmod(0o755)
    os.rename(folder, home / "push" / app_id / "echo")
    wait_for(lambda: current(api, app_id) is not None, timeout=5)


def test_scan_at_start_picks_up_what_arrived_while_down(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    d = make_daemon()
    with d.client() as api:
        app_id = create_app(api)
    d.stop()
    path, sha = package(tmp_path, "knapsack")
    os.rename(path, d.home / "push" / app_id / "offline.tar.gz")
    again = make_daemon(home=d.home)
    with again.client() as api:
        wait_for(lambda: current(api, app_id) == sha, timeout=5)
    again.stop()
    third = make_daemon(home=d.home)  # never ingested twice
    with third.client() as api:
        time.sleep(0.3)
        assert len(api.get(f"/v1/applications/{app_id}/history").json()["items"]) == 1


def _dropped(tmp_path: Path, age: float) -> tuple[Inbox, Path]:
    """An inbox (no push service: the failure is handed in) and a package dropped
    ``age`` seconds ago."""
    inbox = Inbox(Home(tmp_path / "home"), push=None)  # type: ignore[arg-type]
    path = inbox.root / "app" / "big.tar.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"package")
    then = time.time() - age
    os.utime(path, (then, then))
    return inbox, path


def _reason(path: Path) -> str:
    return next((path.parent / ".rejected").glob("*.reason")).read_text()


async def test_a_package_that_fills_the_disk_every_time_is_rejected(tmp_path: Path) -> None:
    """It used to be taken again every 10 s forever, each try flipping the daemon to
    'disk full' for everyone."""
    inbox, path = _dropped(tmp_path, age=60)
    full = OSError(errno.ENOSPC, "No space left on device")
    for _ in range(DISK_TRIES - 1):
        inbox._failed(path, full)
        assert path.exists()  # waits for room
    inbox._failed(path, full)
    assert not path.exists()
    assert "filled the disk under orch's home 3 times" in _reason(path)


async def test_a_package_that_failed_unexpectedly_is_never_stranded(tmp_path: Path) -> None:
    """A file that changed while it was packaged: retried while it is fresh, rejected with
    why once it has settled (it used to stay in the folder, never retried or explained)."""
    inbox, path = _dropped(tmp_path, age=0)
    inbox._failed(path, OSError("unexpected end of data"))
    assert path.exists() and path in inbox._pending  # fresh: taken again once it settles
    old = time.time() - 60
    os.utime(path, (old, old))
    inbox._failed(path, OSError("unexpected end of data"))
    assert not path.exists()
    assert "unexpected end of data" in _reason(path)
