"""The push directory never reads through a link; a full disk keeps an upload; a weak key.

A hostile-user walk found: a symlink in ``push/<app>/`` to the daemon's ``api-key`` got the
key's first 16 characters quoted in ``daemon.log`` and the ``.reason``, and a hard link to
the key filed in ``.rejected/``; a link to ``/proc/self/environ`` never settled and held the
app's valid package back, silently. A commit that met a full disk (507) consumed its upload,
so the retry was a 404. A 7-character ``api-key`` put there by hand was used as the key.
"""

from __future__ import annotations

import io
import os
import socket
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from orchestrator.packaging.build import build_package
from tests.faults import MIB, free_bytes, orch, processes_using, tmpfs
from tests.helpers import SAMPLES, Daemon, create_app, wait_for


def _current(api: httpx.Client, app_id: str) -> str | None:
    r = api.get(f"/v1/applications/{app_id}/executable")
    return r.json()["id"] if r.status_code == 200 else None


def _reasons(folder: Path) -> dict[str, str]:
    """``name`` → the reason it was filed with (``<stamp>-name.reason``)."""
    return {
        p.name.split("-", 1)[1][: -len(".reason")]: p.read_text() for p in folder.glob("*.reason")
    }


def _renamed_in(folder: Path, name: str, data: bytes) -> None:
    staged = folder / f"{name}.tmp"
    staged.write_bytes(data)
    os.rename(staged, folder / name)


def test_links_pipes_and_sockets_are_refused_at_once_and_never_read(
    api: httpx.Client, daemon: Daemon, tmp_path: Path
) -> None:
    """Each is refused saying what it is; what a link leads to is never read, linked or
    quoted, and the link goes (its reason names its target: kept in ``.rejected/``, the
    watcher of ``push/`` would walk into it); a valid package beside them is pushed at once."""
    app_id = create_app(api)
    app = daemon.home / "push" / app_id
    key_file = daemon.home / "api-key"
    key = key_file.read_text().strip()
    os.symlink(key_file, app / "key.tgz")
    os.symlink("/proc/self/environ", app / "env.tgz")
    os.symlink("/proc/kcore", app / "kcore.tar.gz")
    os.mkfifo(app / "pipe.tgz")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(app / "sock.tgz"))
    sock.close()
    good = build_package(SAMPLES / "shell-echo", tmp_path / "good.tar.gz")
    _renamed_in(app, "good.tar.gz", good.path.read_bytes())

    wait_for(lambda: _current(api, app_id) == good.sha256, timeout=5)
    rejected = app / ".rejected"
    names = ("key.tgz", "env.tgz", "kcore.tar.gz", "pipe.tgz", "sock.tgz")
    reasons = wait_for(lambda: len(_reasons(rejected)) == len(names) and _reasons(rejected))
    for name in ("key.tgz", "env.tgz", "kcore.tar.gz"):
        assert "it is a symbolic link" in reasons[name], reasons[name]
        assert "the link was removed" in reasons[name]
    assert "named pipe (FIFO)" in reasons["pipe.tgz"]
    assert "it is a socket" in reasons["sock.tgz"]
    assert all(f"push/{app_id}/" in why for why in reasons.values())
    assert reasons["key.tgz"].strip().endswith(f"It led to: {key_file}")  # its path only
    assert not any(p.is_symlink() for p in rejected.iterdir())
    assert os.stat(key_file).st_nlink == 1  # no hard link to the key anywhere
    assert not any(os.path.lexists(app / name) for name in names)
    assert not list((app / ".held").glob("*"))  # nothing held: nothing was linked
    assert key[:8] not in daemon.log()
    assert not any(key[:8] in why for why in reasons.values())


def test_a_link_to_a_folder_is_refused_and_a_linked_app_folder_is_not_read(
    api: httpx.Client, daemon: Daemon, tmp_path: Path
) -> None:
    """A link to an app's folder in ``push/<app>/`` is refused like any link; an app folder
    ``push/<app>`` that is itself a link is not read through: it is removed, its reason
    says so (``test_push_dir_leftovers``)."""
    app_id = create_app(api)
    app = daemon.home / "push" / app_id
    elsewhere = tmp_path / "echo"
    for name in ("app.yaml", "main"):
        (elsewhere / name).parent.mkdir(exist_ok=True)
        (elsewhere / name).write_bytes((SAMPLES / "shell-echo" / name).read_bytes())
    (elsewhere / "main").chmod(0o755)
    os.symlink(elsewhere, app / "echo")
    reasons = wait_for(lambda: _reasons(app / ".rejected"), timeout=5)
    assert "it is a symbolic link" in reasons["echo"]
    assert _current(api, app_id) is None

    linked_app = daemon.home / "push" / f"{app_id}-linked"
    aside = tmp_path / "aside"
    aside.mkdir()
    built = build_package(elsewhere, tmp_path / "p.tar.gz")
    _renamed_in(aside, "pkg.tar.gz", built.path.read_bytes())
    os.symlink(aside, linked_app)
    said = Path(f"{linked_app}.reason")
    assert "symbolic link" in wait_for(lambda: said.exists() and said.read_text(), timeout=5)
    assert (aside / "pkg.tar.gz").exists() and not (aside / ".rejected").exists()
    assert not os.path.lexists(linked_app)


def test_a_folder_whose_app_yaml_leads_out_is_refused_without_quoting_it(
    api: httpx.Client, daemon: Daemon, tmp_path: Path
) -> None:
    """Its manifest was read before the links rule was applied: a value of the file it led
    to was quoted in the reason (``'<value>' is not one of ...``)."""
    app_id = create_app(api)
    secret = tmp_path / "secret.yaml"
    secret.write_text("type: hunter2-secret-value\n")
    staged = tmp_path / "app"
    staged.mkdir()
    (staged / "main").write_text("#!/bin/sh\necho '{}'\n")
    os.symlink(secret, staged / "app.yaml")
    os.rename(staged, daemon.home / "push" / app_id / "app")
    reasons = wait_for(lambda: _reasons(daemon.home / "push" / app_id / ".rejected"), timeout=8)
    assert "package symlink 'app.yaml' resolves to a path outside" in reasons["app"]
    assert "hunter2" not in reasons["app"] and "hunter2" not in daemon.log()


# -- a commit that meets a full disk -----------------------------------------------------


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", 64) as mounted:
        yield mounted


def _noise_package(size: int) -> bytes:
    """A package of ``size`` incompressible bytes: unpacking it needs that much room."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=1) as tar:
        for name in ("app.yaml", "main"):
            data = (SAMPLES / "shell-echo" / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("noise.bin")
        info.size = size
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    return out.getvalue()


def test_a_commit_that_meets_a_full_disk_keeps_its_upload_for_the_retry(disk: Path) -> None:
    d = Daemon.start(disk / "home", config="disk_low_mb = 8\ndisk_reserve_mb = 4\n")
    try:
        api = d.client()
        app_id = create_app(api)
        slot = api.get(f"/v1/applications/{app_id}/binary").json()
        assert httpx.put(slot["upload_url"], content=_noise_package(20 * MIB)).status_code == 200
        ballast = disk / "ballast"
        ballast.write_bytes(b"\1" * (free_bytes(disk) - 14 * MIB))  # room to pass the gate only
        commit = {"upload_id": slot["upload_id"]}
        r = api.put(f"/v1/applications/{app_id}/binary", json=commit)
        assert r.status_code == 507, r.text
        assert "is kept: the same commit" in r.json()["error"]
        assert "until the upload expires at" in r.json()["error"]
        ballast.unlink()
        wait_for(lambda: httpx.get(f"{d.url}/healthz").json()["disk"]["state"] == "ok", 15)
        r = api.put(f"/v1/applications/{app_id}/binary", json=commit)
        assert r.status_code == 200, r.text  # was: 404 upload ... not found
        assert _current(api, app_id) == r.json()["executable"]["id"]
        r = api.put(f"/v1/applications/{app_id}/binary", json=commit)
        assert r.status_code == 404  # consumed once pushed
        assert not [p for p in (d.home / "uploads").iterdir()]
    finally:
        d.stop()


# -- the API key ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["weakkey", "x" * 47, "ä" * 60, "a b" * 20],
    ids=["7 characters", "one short", "not ascii", "spaces"],
)
def test_a_weak_api_key_in_the_home_is_refused_at_start(tmp_path: Path, key: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "api-key").write_text(key + "\n")
    started = time.monotonic()
    done = orch("daemon", "run", "--home", str(home), "--port", "0", timeout=30)
    assert done.returncode != 0 and time.monotonic() - started < 20  # not the 30 s timeout
    line = done.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, done.stderr
    assert f"the API key in {home / 'api-key'} is not one orch would make" in line
    assert "delete the file" in line and key not in line
    assert not processes_using(home)
