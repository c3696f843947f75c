"""Nothing leaks: ``kill -9`` of the daemon in the middle of a push, an upload and an inbox
ingestion leaves nothing behind once it restarts, and each can be retried cleanly.

The kill must land mid-way: the test watches for the operation's temporary
file, freezes the daemon (SIGSTOP) the moment it appears, checks it is there,
then kills it (SIGKILL), so the window cannot be missed on a busy machine.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from orchestrator.packaging.build import build_package
from tests.conftest import MakeDaemon
from tests.helpers import Daemon, create_app, push_archive, wait_for, wait_run, write_app

DATA_MB = 96
MODEL = "import sys, json\nprint(json.dumps({'got': len(sys.stdin.read())}))\n"


def _big_package(folder: Path) -> Path:
    """A plain tar (nothing to decompress) with a large data file, so unpacking takes a while."""
    archive = folder / "big.tar"
    files = {
        "app.yaml": b"type: python\nruntime: ghcr.io/nextmv-io/runtime/python:3.11\n"
        b"files:\n  - main.py\n  - data.bin\n",
        "main.py": MODEL.encode(),
    }
    with tarfile.open(archive, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("data.bin")
        info.size = DATA_MB * 1024 * 1024
        tar.addfile(info, _Zeros(info.size))
    return archive


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n

    def readable(self) -> bool:
        return True


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _kill_when(d: Daemon, seen: Callable[[], list[Path]], timeout: float = 60) -> list[Path]:
    """Freeze the daemon as soon as ``seen()`` finds something, then kill it; returns what
    was there when it stopped (so the kill provably landed mid-way)."""
    deadline = time.monotonic() + timeout
    while not seen():
        assert time.monotonic() < deadline, "the operation never got under way"
        assert d.process.poll() is None, d.log()
        time.sleep(0.002)
    os.kill(d.process.pid, signal.SIGSTOP)
    left = seen()
    os.kill(d.process.pid, signal.SIGKILL)
    d.process.wait(10)
    assert left, "the kill came too late"
    return left


def _assert_clean(home: Path, recorded: set[str]) -> None:
    """No temporary file, no upload nobody holds, no package or blob no row names."""
    for kind in _entries(home / "tmp"):
        assert not _entries(kind), _entries(kind)
    assert not [p for p in _entries(home / "uploads") if p.name.endswith(".part")]
    assert {p.name for p in _entries(home / "executables")} == recorded
    blobs = {p.name for prefix in _entries(home / "blobs") for p in _entries(prefix)}
    assert blobs == recorded


@contextmanager
def _meanwhile(call: Callable[[], object]) -> Iterator[None]:
    """``call`` on a thread for the block (its connection dies with the daemon)."""

    def run() -> None:
        with contextlib.suppress(httpx.HTTPError):
            call()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield
    thread.join(30)


def test_kill_during_a_push_leaves_nothing_and_the_push_is_retried(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    d = make_daemon()
    api = d.client()
    app_id = create_app(api)
    archive = _big_package(tmp_path)
    url = api.get(f"/v1/applications/{app_id}/binary").json()["upload_url"]
    assert httpx.put(url, content=archive.read_bytes(), timeout=60).status_code == 200
    with _meanwhile(lambda: api.put(f"/v1/applications/{app_id}/binary", json={})):
        left = _kill_when(d, lambda: _entries(d.home / "tmp" / "unpack"))
    taken = _entries(d.home / "uploads")  # the upload, and the link the push consumes
    assert [p.suffix for p in taken] == ["", ".commit"], taken

    again = make_daemon(home=d.home)
    for path in [*left, taken[1]]:
        assert not path.exists(), path
    assert taken[0].exists()  # a commit that did not end keeps its upload: it is retried
    _assert_clean(again.home, recorded=set())
    with again.client() as api:
        r = api.put(f"/v1/applications/{app_id}/binary", json={})
        assert r.status_code == 200, r.text
        assert not _entries(again.home / "uploads")
        r = push_archive(api, app_id, archive)
        assert r.status_code == 200, r.text
        exe = r.json()["executable"]["id"]
        _assert_clean(again.home, recorded={exe})
        run = api.post(f"/v1/applications/{app_id}/runs", json={"input": {}})
        done = wait_run(api, app_id, run.json()["run_id"])
        assert done["metadata"]["status_v2"] == "succeeded", done


def test_kill_during_an_upload_leaves_nothing_and_the_upload_is_retried(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    d = make_daemon()
    api = d.client()
    app_id = create_app(api)
    r = push_archive(api, app_id, _small_package(tmp_path))
    assert r.status_code == 200, r.text
    up = api.post(f"/v1/applications/{app_id}/runs/uploadurl").json()

    def slowly() -> Iterator[bytes]:
        yield b'{"x": "'
        for _ in range(400):
            yield b"a" * 256 * 1024
            time.sleep(0.02)
        yield b'"}'

    def parts() -> list[Path]:
        found = [p for p in _entries(d.home / "uploads") if p.name.endswith(".part")]
        return [p for p in found if p.stat().st_size > 1024 * 1024]

    with _meanwhile(lambda: httpx.put(up["upload_url"], content=slowly(), timeout=60)):
        left = _kill_when(d, parts)

    again = make_daemon(home=d.home)
    for path in left:
        assert not path.exists(), path
    assert not _entries(again.home / "uploads")
    body = b'{"x": "' + b"a" * 1024 * 1024 + b'"}'
    same_url = again.url + "/uploads/" + up["upload_url"].rsplit("/", 1)[1]  # new port
    assert httpx.put(same_url, content=body, timeout=60).status_code == 200
    with again.client() as api:
        run = api.post(f"/v1/applications/{app_id}/runs", json={"upload_id": up["upload_id"]})
        assert run.status_code == 201, run.text
        done = wait_run(api, app_id, run.json()["run_id"])
        assert done["metadata"]["status_v2"] == "succeeded", done
        assert done["output"] == {"got": len(body)}


def test_kill_during_an_inbox_ingestion_leaves_nothing_and_the_package_is_taken_again(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    d = make_daemon()
    app_id = create_app(d.client())
    archive = _big_package(tmp_path)
    inbox = d.home / "push" / app_id
    staged = inbox / "big.tar.tmp"  # a temporary name: the inbox ignores it
    staged.write_bytes(archive.read_bytes())
    staged.rename(inbox / "big.tar")
    scratch = d.home / "tmp"
    left = _kill_when(d, lambda: _entries(scratch / "inbox") + _entries(scratch / "unpack"))
    assert (inbox / "big.tar").exists()  # not filed away: it will be taken again

    again = make_daemon(home=d.home)
    with again.client() as api:
        wait_for(lambda: _entries(inbox / ".done"), timeout=60)
        exe = api.get(f"/v1/applications/{app_id}/executable")
        assert exe.status_code == 200, exe.text
    for path in left:
        assert not path.exists(), path
    _assert_clean(again.home, recorded={exe.json()["id"]})


def test_expired_uploads_go_with_their_files(make_daemon: MakeDaemon) -> None:
    d = make_daemon(config="upload_url_ttl_seconds = 2\n")
    api = d.client()
    app_id = create_app(api)
    up = api.post(f"/v1/applications/{app_id}/runs/uploadurl").json()
    assert httpx.put(up["upload_url"], content=b"{}").status_code == 200
    assert [p.name for p in _entries(d.home / "uploads")] == [up["upload_id"]]
    assert httpx.put(up["upload_url"], content=b"{}").status_code == 409  # used, not gone
    wait_for(lambda: not _entries(d.home / "uploads"), timeout=15)
    r = httpx.put(up["upload_url"], content=b"{}")
    assert r.status_code == 404 and "unknown upload URL" in r.json()["error"]


def _small_package(folder: Path) -> Path:
    return build_package(write_app(folder / "small", MODEL), folder / "small.tar.gz").path
