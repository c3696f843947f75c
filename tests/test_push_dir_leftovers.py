"""The push directory: an app folder that is itself a link, and a drop written for ever.

``push/<app>`` made a link to a folder elsewhere got a ``.reason`` but stayed, and the
watcher followed it each time it set up (a link to ``/usr``: thousands of inotify
watches, files outside ``push/`` looked at). It is now removed, before the watch is set
up, and its reason names its target. A file that keeps being written (a copy that never
ends, a log tailed into the folder) held its app's later drops back without a word: after
``inbox_quiet.WRITING_NOTICE_SECONDS`` (1 s here, not 60 s: the same code path, a
shorter wait) a ``.reason`` beside it says so, and goes once it is quiet and taken.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

from orchestrator.packaging.build import build_package
from tests.conftest import MakeDaemon
from tests.helpers import SAMPLES, Daemon, create_app, wait_for, with_constants, write_app

OLD = time.time() - 3 * 86400
"""The access time given to what a link leads to: a look into it (a watch set up through
the link walks it; a package or app.yaml read) makes it now (``relatime``)."""


def _current(api: httpx.Client, app_id: str) -> str | None:
    r = api.get(f"/v1/applications/{app_id}/executable")
    return r.json()["id"] if r.status_code == 200 else None


def _said(path: Path) -> str | None:
    try:
        return Path(f"{path}.reason").read_text()
    except FileNotFoundError:
        return None


def _elsewhere(folder: Path, tmp_path: Path) -> Path:
    """A folder outside ``push/`` with what would be pushed if it were read through a
    link (an app's folder, a package) and folders for a watch to walk into; each looked
    at last days ago."""
    write_app(folder / "echo", (SAMPLES / "shell-echo" / "main").read_text(), kind="binary")
    built = build_package(SAMPLES / "shell-echo", tmp_path / f"{folder.name}.tar.gz")
    (folder / "pkg.tar.gz").write_bytes(built.path.read_bytes())
    (folder / "many" / "deep").mkdir(parents=True)
    for path in _looked_at(folder):
        os.utime(path, (OLD, OLD), follow_symlinks=False)
    return folder


def _looked_at(folder: Path) -> list[Path]:
    """What a look into ``folder`` reads (not ``folder`` itself: the test lists it)."""
    echo = folder / "echo"
    return [echo, echo / "app.yaml", echo / "main", folder / "pkg.tar.gz", folder / "many"]


def _untouched(folder: Path) -> bool:
    """Nothing in ``folder`` was read, nor made or removed."""
    names = {p.name for p in folder.iterdir()}
    read = [p for p in _looked_at(folder) if os.stat(p).st_atime > OLD + 1]
    return names == {"echo", "pkg.tar.gz", "many"} and not read


def _pushed_one(d: Daemon, api: httpx.Client, tmp_path: Path) -> None:
    """Another app's package is pushed: the watch is in place, and works."""
    other = create_app(api)
    built = build_package(SAMPLES / "shell-echo", tmp_path / "other.tar.gz")
    staged = d.home / "push" / other / "pkg.tar.gz.tmp"
    staged.write_bytes(built.path.read_bytes())
    staged.rename(staged.with_name("pkg.tar.gz"))
    wait_for(lambda: _current(api, other) == built.sha256, timeout=10)


def test_an_app_folder_that_is_a_link_is_removed_and_never_followed(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    """At start (the watch would be set up through it) and while the daemon runs: the link
    goes, its reason beside where it was names its target; nothing there is pushed, watched
    or touched; the app itself stays."""
    home = tmp_path / "home"
    d = make_daemon(home=home)
    with d.client() as api:
        app_id = create_app(api)
        later_id = create_app(api)
    d.stop()
    before = _elsewhere(tmp_path / "before", tmp_path)
    linked = home / "push" / app_id
    linked.rmdir()
    os.symlink(before, linked)

    d = make_daemon(home=home)
    with d.client() as api:
        said = wait_for(lambda: _said(linked), timeout=10)
        assert not os.path.lexists(linked)
        assert said.strip().endswith(f"It led to: {before}"), said
        assert f"push/{app_id} was a symbolic link" in said
        _pushed_one(d, api, tmp_path)
        assert _untouched(before)  # the watch never walked into it as it was set up

        after = _elsewhere(tmp_path / "after", tmp_path)
        later = home / "push" / later_id
        later.rmdir()
        os.symlink(after, later)
        said = wait_for(lambda: _said(later), timeout=10)
        assert not os.path.lexists(later) and f"It led to: {after}" in said
        _pushed_one(d, api, tmp_path)

        time.sleep(0.5)  # what the watch would have seen through them
        assert _current(api, app_id) is None and _current(api, later_id) is None
        assert _untouched(before) and _untouched(after)
        assert api.get(f"/v1/applications/{app_id}").status_code == 200  # the app stays
        assert f"It led to: {before}" in (_said(linked) or "")  # kept: its link went

        linked.mkdir()  # a folder of its own now: the reason goes
        wait_for(lambda: _said(linked) is None, timeout=10)


FAST = with_constants(
    {
        "orchestrator.inbox_quiet.SETTLE_SECONDS": 0.5,
        "orchestrator.inbox_quiet.WRITING_NOTICE_SECONDS": 1.0,
    }
)


def test_a_file_written_for_long_says_so_then_is_taken_once_quiet(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    """Written every 200 ms for longer than the bound, it holds back a package dropped after
    it: its reason says which file is being written and that the later drop waits; once it
    is quiet, the reason goes and both are pushed, in order."""
    d = make_daemon(launcher=FAST)
    with d.client() as api:
        app_id = create_app(api)
        app = d.home / "push" / app_id
        slow = build_package(SAMPLES / "shell-echo", tmp_path / "slow.tar.gz")
        variant = write_app(tmp_path / "variant", "#!/bin/sh\necho variant\n", kind="binary")
        later = build_package(variant, tmp_path / "later.tar.gz")
        data = slow.path.read_bytes()
        chunks = [
            data[i : i + len(data) // 14 + 1] for i in range(0, len(data), len(data) // 14 + 1)
        ]
        seen: list[str] = []
        with open(app / "slow.tar.gz", "wb", buffering=0) as out:
            for i, chunk in enumerate(chunks):
                out.write(chunk)
                if i == 1:  # dropped whole, after it: waits behind it
                    staged = app / "later.tar.gz.tmp"
                    staged.write_bytes(later.path.read_bytes())
                    staged.rename(app / "later.tar.gz")
                if (why := _said(app / "slow.tar.gz")) is not None:
                    seen.append(why)
                time.sleep(0.2)
            assert seen, "no reason while it was written"
            assert _current(api, app_id) is None  # the later one waited
        why = seen[-1]
        assert why.startswith("not pushed yet: slow.tar.gz is still being written"), why
        assert f"the later drops of push/{app_id}/ wait for it" in why

        wait_for(lambda: _current(api, app_id) == later.sha256, timeout=10)
        moves = api.get(f"/v1/applications/{app_id}/history").json()["items"]
        assert slow.sha256 in [m["to"] for m in moves if m["pointer"] == "devint"]
        assert _said(app / "slow.tar.gz") is None
        done = {p.name.split("-", 1)[1] for p in (app / ".done").iterdir()}
        assert {"slow.tar.gz", "later.tar.gz"} <= done
