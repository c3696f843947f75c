"""The blob store's shard folders go with their last blob, and no writer trips over that.

Blobs live in ``blobs/<first two hex digits>/<sha256>``. Collections, app deletes and
input deletes removed the blobs but never their folders, so a home that saw many inputs
come and go kept every shard folder, empty, for ever (and every walk of the store read
them). Now a shard goes with its last blob; a writer storing a blob into that same shard
at that moment must not fail because its folder vanished between its ``mkdir`` and its
rename. In process: the registry's services on a real store, and threads for the race.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.config import Settings
from orchestrator.home import Home
from orchestrator.housekeeping import _sweep_files
from orchestrator.models import Executable
from orchestrator.packaging.build import build_package
from orchestrator.registry.apps import AppService
from orchestrator.registry.gc import Collector
from orchestrator.registry.push import PushService
from orchestrator.store import Store
from orchestrator.store.blobs import BlobStore
from tests.helpers import write_app


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    home = Home(tmp_path / "home")
    home.create()
    store = Store(home.db)
    await store.open()
    yield store
    await store.close()


async def test_collecting_every_package_leaves_no_shard_folder(
    store: Store, tmp_path: Path
) -> None:
    home = Home(tmp_path / "home")
    blobs = BlobStore(home.blobs)
    gc = Collector(store, home, blobs)

    async def nothing_to_build(exe: Executable) -> None:
        return None

    push = PushService(
        store, Settings(home=home, python_envs="daemon"), blobs, gc, nothing_to_build
    )
    apps = AppService(store, home, blobs, gc)
    await apps.create("shards", "Shards")
    pushed = []
    for n in range(3):  # each push collects the one before: devint moved off it
        app_dir = write_app(tmp_path / "src" / str(n), f"print({n})\n")
        pushed.append(
            await push.ingest("shards", build_package(app_dir, tmp_path / f"{n}.tgz").path)
        )
    assert sorted(p.name for p in home.blobs.iterdir()) == [pushed[-1].id[:2]]
    await apps.delete("shards")  # and the last one goes with its app
    assert not list(home.blobs.iterdir()), "empty shard folders stayed"


def test_the_start_sweep_removes_shard_folders_an_older_orch_left_empty(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.create()
    kept = "ab" + "0" * 62
    (home.blobs / "ab").mkdir()
    (home.blobs / "ab" / kept).write_bytes(b"recorded")
    for shard in ("00", "cd", "ff"):
        (home.blobs / shard).mkdir()
    (home.blobs / "ee").mkdir()
    (home.blobs / "ee" / ("ee" + "1" * 62)).write_bytes(b"no row names it")
    assert _sweep_files(home, set(), {kept}) == 1  # the unrecorded blob; folders not counted
    assert [p.name for p in home.blobs.iterdir()] == ["ab"]
    assert (home.blobs / "ab" / kept).read_bytes() == b"recorded"


ROUNDS = 1000


def test_a_writer_never_fails_while_its_shard_is_emptied_and_removed(tmp_path: Path) -> None:
    """Two threads store and delete blobs of one shard in a tight loop: each delete of a
    shard's last blob removes the folder, often between the other's ``mkdir`` and rename."""
    blobs = BlobStore(tmp_path / "blobs")
    blobs.root.mkdir()
    failures: list[BaseException] = []

    async def churn(name: str) -> None:
        scratch = tmp_path / name
        scratch.mkdir()
        for n in range(ROUNDS):
            sha = f"ab{name}{n:060d}"  # any name: the store trusts its caller's hash
            src = scratch / "part"
            src.write_bytes(b"x")
            path = await blobs.adopt(src, sha)
            assert path.read_bytes() == b"x"
            blobs.delete(sha)

    def thread(name: str) -> None:
        try:
            asyncio.run(churn(name))
        except BaseException as exc:  # reported by the test, not lost with the thread
            failures.append(exc)

    threads = [threading.Thread(target=thread, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures
    assert not list(blobs.root.iterdir())
