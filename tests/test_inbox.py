"""The push directory: packages dropped into push/<app>/ move devint."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gzip
import hashlib
import io
import os
import shutil
import signal
import tarfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import TypeVar

import httpx
import pytest
import pytest_asyncio

from orchestrator import inbox_filing, inbox_quiet, inbox_watch
from orchestrator.errors import Unprocessable
from orchestrator.home import Home
from orchestrator.inbox import DISK_TRIES, Inbox
from orchestrator.inbox_filing import Drop, take, too_large
from orchestrator.packaging.build import build_package
from orchestrator.packaging.whole import WholeCheck
from tests.conftest import MakeDaemon
from tests.helpers import (
    RUNTIME,
    SAMPLES,
    Daemon,
    create_app,
    wait_for,
    with_constants,
    write_app,
)

T = TypeVar("T")


def current(api: httpx.Client, app_id: str) -> str | None:
    r = api.get(f"/v1/applications/{app_id}/executable")
    return r.json()["id"] if r.status_code == 200 else None


def package(tmp: Path, sample: str, folder: Path | None = None) -> tuple[Path, str]:
    built = build_package(folder or SAMPLES / sample, tmp / f"{sample}.tar.gz")
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


def _stopped(d: Daemon) -> contextlib.AbstractContextManager[None]:
    """The daemon frozen (SIGSTOP) for the block: whatever it is doing stays under way."""

    @contextlib.contextmanager
    def frozen() -> Iterator[None]:
        os.kill(d.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(d.process.pid, signal.SIGCONT)

    return frozen()


def _renamed_in(folder: Path, name: str, data: bytes, age: float = 60) -> Path:
    """``data`` written under a temporary name, ``age`` seconds old, then renamed to
    ``name``: how a package is meant to be dropped."""
    staged = folder / f".{name}.tmp"
    staged.write_bytes(data)
    os.utime(staged, (time.time() - age, time.time() - age))
    os.rename(staged, folder / name)
    return folder / name


def test_a_package_replaced_under_its_name_while_it_is_pushed_is_pushed_too(
    api: httpx.Client, daemon: Daemon, tmp_path: Path
) -> None:
    """A was filed as "pushed" with B's bytes, and B was never pushed."""
    app_id = create_app(api)
    inbox = daemon.home / "push" / app_id
    main = "import json, sys\nprint(json.dumps({'n': len(sys.stdin.read())}))\n"
    slow = write_app(tmp_path / "slow", main, f"{MANIFEST}  - main.py\n  - data.bin\n")
    (slow / "data.bin").write_bytes(os.urandom(4 * 1024 * 1024))  # slow enough to catch
    a, a_sha = package(tmp_path, "slow", slow)
    b, b_sha = package(tmp_path, "shell-echo")
    copies = daemon.home / "tmp" / "inbox"
    _renamed_in(inbox, "same.tar.gz", a.read_bytes())
    wait_for(lambda: list(copies.glob("inbox-*")), timeout=10, interval=0.001)
    with _stopped(daemon):  # A is being copied or pushed: B takes its name meanwhile
        _renamed_in(inbox, "same.tar.gz", b.read_bytes())
    wait_for(lambda: current(api, app_id) == b_sha, timeout=10)
    moves = [m["to"] for m in api.get(f"/v1/applications/{app_id}/history").json()["items"]]
    assert moves == [b_sha, a_sha]  # newest first
    wait_for(lambda: len(sorted((inbox / ".done").glob("*same.tar.gz"))) == 2)
    done = sorted((inbox / ".done").glob("*same.tar.gz"))
    assert sorted(_sha(p) for p in done) == sorted([a_sha, b_sha])
    assert all(Path(f"{p}.reason").read_text() == "pushed\n" for p in done)
    assert not (inbox / "same.tar.gz").exists()


def test_a_plain_tar_written_in_place_with_a_pause_is_never_pushed_half(
    api: httpx.Client, daemon: Daemon, tmp_path: Path
) -> None:
    """Cut at a member boundary a tar reads as valid: it was pushed without its last
    module, and the run failed with ModuleNotFoundError."""
    app_id = create_app(api)
    main = "import helper\nhelper.run()\n"
    app = write_app(tmp_path / "two", main, f"{MANIFEST}  - main.py\n  - helper.py\n")
    (app / "helper.py").write_text("def run():\n    print('{\"ok\": true}')\n")
    whole, cut = _plain_tar(app, ["app.yaml", "main.py", "helper.py"], cut_before="helper.py")
    target = daemon.home / "push" / app_id / "two.tar"
    target.write_bytes(whole[:cut])  # a writer that opens the file twice
    time.sleep(1.0)
    assert current(api, app_id) is None
    with target.open("ab") as fh:
        fh.write(whole[cut:])
    wait_for(lambda: current(api, app_id) is not None, timeout=10)
    assert current(api, app_id) == hashlib.sha256(whole).hexdigest()
    time.sleep(0.5)
    assert len(api.get(f"/v1/applications/{app_id}/history").json()["items"]) == 1


@pytest.mark.parametrize("how", ["a new file", "the same file rewritten"])
def test_a_waiting_package_replaced_by_one_whose_writer_died_loses_nothing_to_orch(
    api: httpx.Client, daemon: Daemon, tmp_path: Path, how: str
) -> None:
    """Reported as "a package replaced and then killed in the inbox is lost". A whole
    package waits (its writer still holds it open); another takes its name, and that
    one's writer dies half way. A new file under the name: the first is still held (its
    link in ``tmp/inbox/``), pushed and filed in ``.done/``, and the part is refused
    in ``.rejected/`` with why. The same file written again (``cp``, ``open("wb")``):
    the writer itself destroyed the first package's bytes; the part is refused with why,
    and nothing half is pushed."""
    app_id = create_app(api)
    inbox = daemon.home / "push" / app_id
    first, first_sha = package(tmp_path, "shell-echo")
    second = package(tmp_path, "knapsack")[0].read_bytes()
    name = inbox / "same.tar.gz"
    with name.open("wb") as held:  # whole, but its writer has not closed it yet
        held.write(first.read_bytes())
        held.flush()
        wait_for(lambda: _holds(daemon.home, app_id), timeout=5)
        if how == "a new file":
            name.unlink()
        with name.open("wb") as dying:  # the newcomer's writer dies half way
            dying.write(second[: len(second) // 2])
    rejected = wait_for(lambda: _filed(inbox / ".rejected"), timeout=15)
    assert [p.read_bytes() for p in rejected] == [second[: len(second) // 2]]
    reason = Path(f"{rejected[0]}.reason").read_text()
    assert reason.startswith("package is corrupt or truncated"), reason
    if how == "a new file":
        wait_for(lambda: current(api, app_id) == first_sha, timeout=10)
        done = wait_for(lambda: _filed(inbox / ".done"), timeout=5)
        assert [_sha(p) for p in done] == [first_sha]
        assert Path(f"{done[0]}.reason").read_text() == "pushed\n"
    else:
        time.sleep(0.5)
        assert current(api, app_id) is None and not (inbox / ".done").exists()
    assert not name.exists()


def test_a_waiting_package_whose_name_was_taken_outlives_a_killed_daemon(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    """The daemon held a waiting package by its link alone (another took its name), in
    ``tmp/inbox/``; SIGKILLed, the next start emptied ``tmp/`` and the package was gone,
    unsaid. Now its hold is kept where the next start finds it: filed in ``.rejected/``
    with why (the package now under its name is newer: pushing the old one after it
    would leave devint on the older), and the half-written newcomer refused."""
    d = make_daemon()
    with d.client() as api:
        app_id = create_app(api)
    inbox = d.home / "push" / app_id
    first = package(tmp_path, "shell-echo")[0].read_bytes()
    second = package(tmp_path, "knapsack")[0].read_bytes()
    name = inbox / "same.tar.gz"
    with name.open("wb") as held:  # whole, but its writer has not closed it yet
        held.write(first)
        held.flush()
        wait_for(lambda: _holds(d.home, app_id), timeout=5)
        name.unlink()
        with name.open("wb") as dying:  # the newcomer's writer dies half way
            dying.write(second[: len(second) // 2])
        d.kill()
    again = make_daemon(home=d.home)
    with again.client() as api:
        rejected = wait_for(lambda: len(_filed(inbox / ".rejected")) == 2 and _filed(
            inbox / ".rejected"), timeout=15)  # fmt: skip
        kept = {p.read_bytes(): Path(f"{p}.reason").read_text() for p in rejected}
        assert set(kept) == {first, second[: len(second) // 2]}
        assert "daemon stopped while it waited" in kept[first], kept[first]
        assert kept[second[: len(second) // 2]].startswith("package is corrupt or truncated")
        assert all(p.name.endswith("-same.tar.gz") for p in rejected), rejected
        assert current(api, app_id) is None
    assert not name.exists() and not _holds(d.home, app_id)


def _holds(home: Path, app_id: str) -> list[Path]:
    """The inbox's holds (hard links) on the packages it has taken and not yet filed."""
    return [
        *(home / "tmp" / "inbox").glob("claim-*"),
        *(home / "push" / app_id / ".held").glob("*"),
    ]


MANIFEST = "type: python\nruntime: ghcr.io/nextmv-io/runtime/python:3.11\nfiles:\n"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _plain_tar(folder: Path, names: list[str], cut_before: str) -> tuple[bytes, int]:
    """A plain tar of ``names`` and the offset where member ``cut_before`` starts."""
    out = io.BytesIO()
    cut = 0
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            if name == cut_before:
                cut = out.tell()
            tar.add(folder / name, arcname=name)
    return out.getvalue(), cut


# -- in-process: the inbox with a stand-in for the push service -------------------------


class FakePush:
    """Takes what the inbox hands over, as ``PushService.ingest`` does (the archive is
    consumed; over ``max_package_mb`` is refused), and records each package's bytes.
    ``gate`` holds an ingestion open so a test can act while it is under way."""

    def __init__(self, max_package_mb: int = 200) -> None:
        self.settings = SimpleNamespace(max_package_mb=max_package_mb)
        self.pushed: list[bytes] = []
        self.attempts = 0
        self.started = asyncio.Event()
        self.gate: asyncio.Event | None = None

    async def ingest(self, app_id: str, archive: Path, action: str = "push") -> SimpleNamespace:
        self.attempts += 1
        try:
            size = archive.stat().st_size
            if size > self.settings.max_package_mb * 1024 * 1024:
                raise too_large(size, self.settings.max_package_mb)  # the push's words
            data = archive.read_bytes()
            if data.startswith(b"bad"):
                raise Unprocessable("not a tar.gz")
        finally:
            archive.unlink(missing_ok=True)
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        self.pushed.append(data)
        return SimpleNamespace(id=f"exe-{len(self.pushed)}")


class NoBuilds:
    """``Environments`` of packages without requirements: none is ever being built."""

    def building(self, exe_id: str) -> bool:
        return False


async def until(check: Callable[[], T], within: float = 5.0) -> T:
    deadline = time.monotonic() + within
    while not (value := check()):
        assert time.monotonic() < deadline, f"condition not met within {within} s ({value!r})"
        await asyncio.sleep(0.02)
    return value


@pytest_asyncio.fixture(loop_scope="function")  # the test's loop, which runs the inbox
async def box(tmp_path: Path) -> AsyncIterator[tuple[Inbox, FakePush, Path]]:
    """A running inbox on a home of its own, and its app folder ``push/app``."""
    async with _running_inbox(tmp_path, FakePush()) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="function")
async def small_box(tmp_path: Path) -> AsyncIterator[tuple[Inbox, FakePush, Path]]:
    """``box`` with ``max_package_mb = 1``."""
    async with _running_inbox(tmp_path, FakePush(max_package_mb=1)) as running:
        yield running


@contextlib.asynccontextmanager
async def _running_inbox(
    tmp_path: Path, push: FakePush
) -> AsyncIterator[tuple[Inbox, FakePush, Path]]:
    home = Home(tmp_path / "home")
    home.create()
    inbox = Inbox(home, push, NoBuilds())  # type: ignore[arg-type]
    (home.push / "app").mkdir()
    await inbox.start()
    await asyncio.sleep(0.2)  # the watch is in place
    try:
        yield inbox, push, home.push / "app"
    finally:
        await inbox.stop()


def _filed(folder: Path, pattern: str = "*") -> list[Path]:
    return sorted(p for p in folder.glob(pattern) if not p.name.endswith(".reason"))


async def test_each_of_many_drops_under_one_name_is_pushed_and_filed(
    box: tuple[Inbox, FakePush, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six drops of ``same.tar.gz`` within a second, while the first is being pushed: each
    is pushed, in order, and filed under a name of its own (``.done/`` kept 2 of 6)."""
    _, push, app = box
    monkeypatch.setattr(time, "strftime", lambda *_: "20260101T000000")  # one second
    push.gate = asyncio.Event()
    sent = [f"package {i}".encode() for i in range(6)]
    _renamed_in(app, "same.tar.gz", sent[0])
    await until(push.started.is_set)
    for data in sent[1:]:
        _renamed_in(app, "same.tar.gz", data)
        await asyncio.sleep(0.12)  # seen one at a time, each replacing the one before
    push.gate.set()
    await until(lambda: len(push.pushed) == 6)
    assert push.pushed == sent
    await until(lambda: len(_filed(app / ".done")) == 6)
    done = _filed(app / ".done")
    assert sorted(p.read_bytes() for p in done) == sorted(sent)
    assert {Path(f"{p}.reason").read_text() for p in done} == {"pushed\n"}
    assert not (app / "same.tar.gz").exists()


async def test_a_package_that_changes_after_it_was_read_is_pushed_again(
    box: tuple[Inbox, FakePush, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox_quiet, "SETTLE_SECONDS", 0.6)  # its retry waits one settle
    _, push, app = box
    push.gate = asyncio.Event()
    path = _renamed_in(app, "pkg.tar", b"first half")
    await until(push.started.is_set)
    with path.open("ab") as fh:  # its writer went on after the read
        fh.write(b", second half")
    push.gate.set()
    await until(lambda: len(push.pushed) == 2, within=8)
    assert push.pushed == [b"first half", b"first half, second half"]
    done = await until(lambda: _filed(app / ".done"))
    assert [p.read_bytes() for p in done] == [b"first half, second half"]


@pytest.mark.parametrize("held_open", [False, True], ids=["reopened", "held-open"])
async def test_a_package_written_in_place_with_a_pause_is_pushed_whole(
    box: tuple[Inbox, FakePush, Path], monkeypatch: pytest.MonkeyPatch, held_open: bool
) -> None:
    """Written under its final name, paused shorter than the settle time (opened twice),
    or longer with the file held open: pushed once, whole (the first half was pushed)."""
    monkeypatch.setattr(inbox_quiet, "SETTLE_SECONDS", 0.6)
    _, push, app = box
    target = app / "pkg.tar"
    if held_open:
        with target.open("wb") as fh:
            fh.write(b"first half")
            fh.flush()
            await asyncio.sleep(1.2)  # twice the settle time: only an open writer tells
            fh.write(b", second half")
    else:
        target.write_bytes(b"first half")
        await asyncio.sleep(0.4)
        with target.open("ab") as fh:
            fh.write(b", second half")
    await until(lambda: push.pushed, within=5)
    await asyncio.sleep(0.3)
    assert push.pushed == [b"first half, second half"]


@pytest.mark.parametrize("how", ["written in place", "built and moved in"])
async def test_a_whole_package_no_one_holds_open_is_pushed_at_once(
    box: tuple[Inbox, FakePush, Path], tmp_path: Path, how: str
) -> None:
    """Written in place, or renamed in within one tick of the kernel's clock after its
    last write (ctime then equals mtime, as for a write in place: the bench's drops), a
    package waited the whole settle time (2 s) though it was whole and closed."""
    _, push, app = box
    source = write_app(tmp_path / "app", "print('{}')\n")
    for n in range(3):
        data = build_package(source, tmp_path / f"p{n}.tar.gz").path.read_bytes()
        start = time.monotonic()
        if how == "written in place":
            (app / f"pkg{n}.tar.gz").write_bytes(data)
        else:
            build_package(source, app / f".pkg{n}.tar.gz.part")
            os.rename(app / f".pkg{n}.tar.gz.part", app / f"pkg{n}.tar.gz")
        await until(lambda n=n: len(push.pushed) == n + 1, within=5)  # type: ignore[misc]
        took = time.monotonic() - start
        assert push.pushed[-1] == data
        assert took < inbox_quiet.SETTLE_SECONDS * 0.75, f"pushed after {took:.2f} s"


@pytest.mark.parametrize("linked", [True, False], ids=["linked", "read in place"])
async def test_a_package_pushed_at_once_is_read_once(
    box: tuple[Inbox, FakePush, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    linked: bool,
) -> None:
    """Written in place and whole, a package was read through to check that it is whole,
    then again to copy it out: now it is checked as it is copied. ``rchar`` counts the
    bytes this process reads: the copy out, and the stand-in push reading the copy."""
    if not linked:  # another file system: no hard link, the file is read where it lies
        monkeypatch.setattr(inbox_filing, "_link", _no_link)
    _, push, app = box
    source = write_app(tmp_path / "app", "print('{}')\n", f"{MANIFEST}  - main.py\n  - data.bin\n")
    (source / "data.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    data = build_package(source, tmp_path / "p.tar.gz").path.read_bytes()
    assert len(data) > 8 * 1024 * 1024
    before = _bytes_read()
    (app / "pkg.tar.gz").write_bytes(data)
    await until(lambda: push.pushed, within=5)
    assert push.pushed == [data]
    reads = (_bytes_read() - before) / len(data)
    assert reads < 2.5, f"read {reads:.2f} times its size"  # was 3: once more to check it


async def test_a_package_read_in_place_and_replaced_before_it_was_read_is_said(
    box: tuple[Inbox, FakePush, Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Not held by a link (another file system), a waiting package whose name another
    took before it was read is gone: that was forgotten without a word; now said."""
    monkeypatch.setattr(inbox_filing, "_link", _no_link)
    _, push, app = box
    push.gate = asyncio.Event()
    _renamed_in(app, "first.tar.gz", b"pushed first")
    await until(push.started.is_set)
    _renamed_in(app, "same.tar.gz", b"waits behind it")
    await asyncio.sleep(0.6)  # seen, taken, queued
    _renamed_in(app, "same.tar.gz", b"took its name")  # over it: its bytes are gone
    push.gate.set()
    await until(lambda: len(push.pushed) == 2)
    assert push.pushed == [b"pushed first", b"took its name"]
    lines = [r.getMessage() for r in caplog.records if r.name == "orch.inbox"]
    assert any("same.tar.gz was removed or replaced before it was read" in m for m in lines)


def _no_link(path: Path, claim: Path) -> None:
    raise OSError(errno.EXDEV, "Invalid cross-device link")


def _bytes_read() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.parametrize(
    ("kind", "whole"),
    [
        ("tar.gz", True),
        ("tar", True),
        ("tar.gz cut", False),
        ("tar cut at a member", False),
        ("two gzip members", True),
        ("gzip of a cut tar", False),
        ("noise", False),
        ("empty", False),
    ],
)
def test_the_whole_check_tells_a_package_from_its_first_part(
    tmp_path: Path, kind: str, whole: bool
) -> None:
    app = write_app(tmp_path / "app", "print('{}')\n" + "# padding\n" * 300)
    (app / "b.txt").write_bytes(os.urandom(5000))
    plain, cut = _plain_tar(app, ["app.yaml", "main.py", "b.txt"], cut_before="b.txt")
    packed = build_package(app, tmp_path / "p.tar.gz").path.read_bytes()
    data = {
        "tar.gz": packed,
        "tar": plain,
        "tar.gz cut": packed[: len(packed) - 9],
        "tar cut at a member": plain[:cut],
        "two gzip members": gzip.compress(plain[:cut]) + gzip.compress(plain[cut:]),
        "gzip of a cut tar": gzip.compress(plain[:cut]),
        "noise": os.urandom(4096),
        "empty": b"",
    }[kind]
    check = WholeCheck()
    for start in range(0, len(data), 1000):  # in pieces, as a copy reads it
        check.feed(data[start : start + 1000])
    assert check.whole() is whole


async def test_a_folder_filed_twice_in_one_second_is_filed_both_times(
    box: tuple[Inbox, FakePush, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The second ``appdir`` stayed in place with a traceback (Directory not empty)."""
    _, push, app = box
    monkeypatch.setattr(time, "strftime", lambda *_: "20260101T000000")
    for n in (1, 2):
        folder = shutil.copytree(SAMPLES / "shell-echo", tmp_path / f"appdir{n}")
        os.rename(folder, app / "appdir")
        await until(lambda n=n: len(_filed(app / ".done", "*appdir")) == n)  # type: ignore[misc]
    assert not (app / "appdir").exists() and len(push.pushed) == 2


async def test_an_oversize_package_is_refused_before_it_is_copied(
    small_box: tuple[Inbox, FakePush, Path],
) -> None:
    """A sparse 3 GiB file was copied out in full (allocated for real) before the check."""
    inbox, push, app = small_box
    staged = app / ".huge.tar.tmp"
    with staged.open("wb") as fh:
        fh.truncate(64 * 1024 * 1024)
    os.utime(staged, (time.time() - 60, time.time() - 60))
    os.rename(staged, app / "huge.tar")
    reasons = await until(lambda: list((app / ".rejected").glob("*.reason")))
    assert reasons[0].read_text() == "package is 64.0 MiB; the limit is 1 MiB (max_package_mb)\n"
    assert push.attempts == 0 and not list(inbox.scratch.iterdir())


async def test_an_oversize_folder_is_packaged_no_further_than_the_limit(
    small_box: tuple[Inbox, FakePush, Path], tmp_path: Path
) -> None:
    """A dropped folder was packaged whole (its size in scratch disk and time) before the
    push refused the package: now the build stops as it passes the limit."""
    inbox, push, app = small_box
    folder = write_app(tmp_path / "big", "print('hi')\n", f"type: python\nruntime: {RUNTIME}\n"
                       "files: [main.py, data*.bin]\n")  # fmt: skip
    for n in range(8):  # 8 MiB that gzip cannot shrink
        (folder / f"data{n}.bin").write_bytes(os.urandom(1024 * 1024))
    os.rename(folder, app / "big")
    reasons = await until(lambda: list((app / ".rejected").glob("*.reason")))
    assert reasons[0].read_text() == (
        "package is over 1 MiB, the limit (max_package_mb): its folder was packaged no further\n"
    )
    assert push.attempts == 0 and not list(inbox.scratch.iterdir())


@pytest.mark.parametrize("how", ["moved", "removed"])
async def test_a_push_folder_moved_away_or_removed_is_watched_anew(
    box: tuple[Inbox, FakePush, Path], caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """Packages dropped in the new ``push/`` were never taken, and nothing said so."""
    inbox, push, app = box
    if how == "moved":
        os.rename(inbox.root, inbox.root.with_name("push.moved"))
        app.mkdir(parents=True)
    else:
        shutil.rmtree(inbox.root)
        await until(lambda: inbox.root.is_dir())  # made again
        await asyncio.sleep(0.2)
        app.mkdir()
    await asyncio.sleep(0.2)
    _renamed_in(app, "pkg.tar.gz", b"dropped in the new folder")
    await until(lambda: push.pushed, within=5)
    lines = [r.getMessage() for r in caplog.records if r.name == "orch.inbox"]
    assert len([m for m in lines if "watching a new one" in m]) == 1, lines
    assert inbox.problem is None


async def test_names_are_logged_escaped(
    box: tuple[Inbox, FakePush, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """A file name wrote a forged "orch daemon stopped" line and a raw escape into
    daemon.log."""
    _, _, app = box
    name = "evil\n2026-12-07 06:20:00,000 orch.daemon orch daemon stopped\x1b[31m.tar.gz"
    _renamed_in(app, name, b"bad package")
    await until(lambda: list((app / ".rejected").glob("*.reason")))
    lines = [r.getMessage() for r in caplog.records if r.name == "orch.inbox"]
    assert lines and all("\n" not in m and "\x1b" not in m for m in lines), lines
    assert any("evil\\n2026-12-07" in m and "\\x1b[31m" in m for m in lines), lines


async def test_packages_seen_together_are_pushed_in_the_order_they_arrived(
    box: tuple[Inbox, FakePush, Path],
) -> None:
    """They went in name order: devint ended on ``a.tar.gz``, dropped first."""
    _, push, app = box
    _renamed_in(app, "b.tar.gz", b"dropped first")
    await asyncio.sleep(0.02)  # in one batch of the watcher
    _renamed_in(app, "a.tar.gz", b"dropped last")
    await until(lambda: len(push.pushed) == 2)
    assert push.pushed == [b"dropped first", b"dropped last"]


async def test_a_package_that_waits_to_settle_holds_back_later_ones_of_its_app(
    box: tuple[Inbox, FakePush, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written in place, the first waits to settle; one renamed in after it must not go
    first (devint ended on the older package)."""
    monkeypatch.setattr(inbox_quiet, "SETTLE_SECONDS", 0.6)
    _, push, app = box
    (app / "first.tar.gz").write_bytes(b"dropped first")
    await asyncio.sleep(0.15)
    _renamed_in(app, "second.tar.gz", b"dropped second")
    await until(lambda: len(push.pushed) == 2)
    assert push.pushed == [b"dropped first", b"dropped second"]


async def test_what_is_not_a_package_is_rejected_saying_so(
    box: tuple[Inbox, FakePush, Path],
) -> None:
    """``x.zip`` and a link in a loop stayed in place, unexplained (a link is never
    followed: it is refused as one)."""
    _, push, app = box
    _renamed_in(app, "x.zip", b"PK")
    os.symlink("loop.tar.gz", app / "loop.tar.gz")
    reasons = await until(lambda: len(list((app / ".rejected").glob("*.reason"))) == 2)
    assert reasons
    texts = {p.name.split("-", 1)[1]: p.read_text() for p in (app / ".rejected").glob("*.reason")}
    assert "not a package" in texts["x.zip.reason"]
    assert "it is a symbolic link" in texts["loop.tar.gz.reason"]
    assert not push.attempts


async def _dropped(tmp_path: Path, age: float) -> tuple[Inbox, Drop]:
    """An inbox (not started, no push service: the failure is handed in) and a package
    dropped ``age`` seconds ago, taken."""
    home = Home(tmp_path / "home")
    home.create()
    inbox = Inbox(home, push=None, envs=NoBuilds())  # type: ignore[arg-type]
    path = inbox.root / "app" / "big.tar.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"package")
    then = time.time() - age
    os.utime(path, (then, then))
    drop = take(path, path.parent / inbox_filing.HELD)
    assert drop is not None
    inbox._drops.put(drop)
    return inbox, drop


def _reason(path: Path) -> str:
    return next((path.parent / ".rejected").glob("*.reason")).read_text()


async def test_a_package_that_fills_the_disk_every_time_is_rejected(tmp_path: Path) -> None:
    """It used to be taken again every 10 s forever, each try flipping the daemon to
    'disk full' for everyone."""
    inbox, drop = await _dropped(tmp_path, age=60)
    full = OSError(errno.ENOSPC, "No space left on device")
    for _ in range(DISK_TRIES - 1):
        inbox._failed(drop, full)
        assert drop.origin.exists()  # waits for room
    inbox._failed(drop, full)
    assert not drop.origin.exists()
    assert "filled the disk under orch's home 3 times" in _reason(drop.origin)
    await inbox.stop()


async def test_a_package_that_failed_unexpectedly_is_never_stranded(tmp_path: Path) -> None:
    """A file that changed while it was packaged: retried while it is fresh, rejected with
    why once it has settled (it used to stay in the folder, never retried or explained)."""
    inbox, drop = await _dropped(tmp_path, age=0)
    inbox._failed(drop, OSError("unexpected end of data"))
    assert drop.origin.exists() and drop.ident in inbox._drops  # taken again once settled
    old = time.time() - 60
    os.utime(drop.origin, (old, old))
    inbox._failed(drop, OSError("unexpected end of data"))
    assert not drop.origin.exists()
    assert "unexpected end of data" in _reason(drop.origin)
    await inbox.stop()


async def test_a_link_to_a_package_is_refused_not_followed(
    box: tuple[Inbox, FakePush, Path], tmp_path: Path
) -> None:
    """A link was followed: one to the daemon's key got its first bytes quoted in the log
    and a hard link to it filed. Now the link is refused and removed (its reason names its
    target), and its target untouched (``tests/test_push_dir_links.py`` has the daemon's
    side)."""
    _, push, app = box
    elsewhere = tmp_path / "home" / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "pkg.tar.gz").write_bytes(b"the package")
    os.utime(elsewhere / "pkg.tar.gz", (time.time() - 60, time.time() - 60))
    os.symlink("../../elsewhere/pkg.tar.gz", app / "pkg.tar.gz")
    said = await until(lambda: list((app / ".rejected").glob("*.reason")))
    assert "../../elsewhere/pkg.tar.gz" in said[0].read_text() and not push.attempts
    assert not _filed(app / ".rejected") and not os.path.lexists(app / "pkg.tar.gz")
    assert os.stat(elsewhere / "pkg.tar.gz").st_nlink == 1


async def test_a_push_folder_that_cannot_be_watched_says_so_until_it_can(
    box: tuple[Inbox, FakePush, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``problem`` (for ``/healthz``) names why packages are not taken, while it lasts."""
    monkeypatch.setattr(inbox_watch, "REWATCH_SECONDS", 0.2)
    inbox, push, app = box
    shutil.rmtree(inbox.root)
    inbox.root.write_text("a file where push/ should be")
    assert "cannot be watched" in await until(lambda: inbox.problem or "")
    inbox.root.unlink()
    await until(lambda: inbox.problem is None and inbox.root.is_dir())
    await asyncio.sleep(0.2)
    app.mkdir()
    _renamed_in(app, "pkg.tar.gz", b"taken again")
    await until(lambda: push.pushed)


async def test_a_watch_that_fails_to_start_is_reported_not_taken_for_working(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_watch(*_: object, **__: object) -> AsyncIterator[set[tuple[int, str]]]:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")
        yield set()

    monkeypatch.setattr(inbox_watch, "awatch", no_watch)
    monkeypatch.setattr(inbox_watch, "REWATCH_SECONDS", 0.1)
    home = Home(tmp_path / "home")
    home.create()
    inbox = Inbox(home, FakePush(), NoBuilds())  # type: ignore[arg-type]
    await inbox.start()
    try:
        await until(lambda: inbox.problem)
        await asyncio.sleep(0.3)  # tried again, and failed again
        assert "inotify watch limit reached" in (inbox.problem or "")
    finally:
        await inbox.stop()


def test_a_package_renamed_onto_the_name_as_it_is_released_is_put_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Releasing the name of a filed package removes it only if it still names that
    package: one renamed onto it at that very moment is put back, not removed."""
    app = tmp_path / "push" / "app"
    app.mkdir(parents=True)
    origin = _renamed_in(app, "same.tar.gz", b"A")
    drop = take(origin, app / inbox_filing.HELD)
    assert drop is not None and drop.claim is not None
    real_rename = os.rename

    def newcomer_first(src: object, dst: object) -> None:
        if Path(str(src)) == origin:  # B lands between the look and the move aside
            (app / ".b.tmp").write_bytes(b"B")
            real_rename(app / ".b.tmp", origin)
        real_rename(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(inbox_filing.os, "rename", newcomer_first)
    dest = inbox_filing.file_away(drop, ".done", "pushed")
    assert dest is not None and dest.read_bytes() == b"A"
    assert origin.read_bytes() == b"B"  # put back, for its own drop
    assert not list((app / inbox_filing.HELD).iterdir())


def _file_instead_of_folder(push: Path) -> None:
    """A file where the folder ``push`` is; the daemon makes a missing push/ again at its
    next look, which may fall between the removal and the write: then again."""
    for _ in range(20):
        shutil.rmtree(push, ignore_errors=True)
        try:
            push.write_text("a file where push/ should be")
            return
        except IsADirectoryError:
            continue
    raise AssertionError("the daemon kept making push/ again")


def test_healthz_and_status_say_when_the_push_directory_cannot_be_watched(
    make_daemon: MakeDaemon,
) -> None:
    """End to end: a file where push/ should be makes the daemon "degraded", naming why,
    in /healthz and `orch daemon status`; once it can watch again, both are "ok" (at its
    next try: every 0.5 s here, not every 5 s, which this test waited out)."""
    from tests.cli_run import orch_json

    d = make_daemon(launcher=with_constants({"orchestrator.inbox_watch.REWATCH_SECONDS": 0.5}))
    push = d.home / "push"
    _file_instead_of_folder(push)
    with d.client() as api:
        health = wait_for(lambda: (h := api.get("/healthz").json())["status"] == "degraded" and h,
                          timeout=30)  # fmt: skip
        assert "cannot be watched" in health["inbox"]["problem"], health
        assert "cannot be watched" in orch_json(d, "daemon status")["push_directory"]
        push.unlink()
        wait_for(lambda: api.get("/healthz").json()["status"] == "ok", timeout=30)
        assert push.is_dir() and "push_directory" not in orch_json(d, "daemon status")
