"""Pushes against garbage collection, in process with the real store and files.

A push finds its package unpacked already (the same bytes pushed before) or unpacks it,
then records it; a collection in between (another push's, an app delete's) removed the
files of a package that looked unreferenced, and the push then recorded an executable
without files: every run of devint failed, after restarts too. Found by two pushes to one
app released together (4 of 4 tries); here the interleaving is forced.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.config import Settings
from orchestrator.errors import NotFound
from orchestrator.home import Home
from orchestrator.models import Executable
from orchestrator.packaging.build import build_package
from orchestrator.registry.apps import AppService
from orchestrator.registry.gc import Collector
from orchestrator.registry.push import PushService
from orchestrator.store import Store
from orchestrator.store.blobs import BlobStore
from tests.helpers import write_app


@dataclass
class World:
    home: Home
    store: Store
    blobs: BlobStore
    gc: Collector
    push: PushService
    apps: AppService
    packages: dict[str, Path]

    def archive(self, name: str, tmp: Path) -> Path:
        """A fresh copy of package ``name`` (a push consumes its archive)."""
        copy = tmp / f"{name}-{len(list(tmp.iterdir()))}.tar.gz"
        copy.write_bytes(self.packages[name].read_bytes())
        return copy

    def files_of(self, exe_id: str) -> tuple[bool, bool]:
        return (self.home.executables / exe_id).is_dir(), self.blobs.path(exe_id).exists()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    home = Home(tmp_path / "home")
    home.create()
    settings = Settings(home=home, python_envs="daemon")
    store = Store(home.db)
    await store.open()
    blobs = BlobStore(home.blobs)
    gc = Collector(store, home, blobs)

    async def nothing_to_build(exe: Executable) -> None:
        return None

    push = PushService(store, settings, blobs, gc, nothing_to_build)
    packages = {}
    for name in ("p", "q"):
        app_dir = write_app(tmp_path / "src" / name, f'print(\'{{"package": "{name}"}}\')\n')
        packages[name] = build_package(app_dir, tmp_path / f"{name}.tar.gz").path
    (tmp_path / "copies").mkdir()
    yield World(home, store, blobs, gc, push, AppService(store, home, blobs, gc), packages)
    await store.close()


def hold_after_adopt(
    world: World, monkeypatch: pytest.MonkeyPatch, only: str | None = None
) -> tuple[asyncio.Event, asyncio.Event]:
    """(adopted, go_on): a push (of package ``only``, or any) that has stored its bytes
    sets ``adopted`` and waits for ``go_on`` before it records its executable."""
    adopted, go_on = asyncio.Event(), asyncio.Event()
    adopt = world.blobs.adopt

    async def slow_adopt(src: Path, sha: str) -> Path:
        found = await adopt(src, sha)
        if only is None or sha == only:
            adopted.set()
            await go_on.wait()
        return found

    monkeypatch.setattr(world.blobs, "adopt", slow_adopt)
    return adopted, go_on


async def test_a_collection_leaves_the_package_a_push_is_recording(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copies = tmp_path / "copies"
    await world.apps.create("racy", "Racy")
    p = await world.push.ingest("racy", world.archive("p", copies))
    # p's push will find p's files, and wait before recording them
    adopted, go_on = hold_after_adopt(world, monkeypatch, p.id)
    again = asyncio.create_task(world.push.ingest("racy", world.archive("p", copies)))
    await adopted.wait()
    # meanwhile a push of q moves devint off p and collects what nothing points at
    q = await world.push.ingest("racy", world.archive("q", copies))
    assert q.id != p.id and world.files_of(p.id) == (True, True)
    go_on.set()
    assert (await again).id == p.id
    current = await world.store.read.apps.get("racy")
    assert current is not None and current.executable_id == p.id
    assert world.files_of(p.id) == (True, True)  # devint's package, whole
    await world.gc.collect()  # q is unreferenced now: it goes, p stays
    assert world.files_of(q.id) == (False, False) and world.files_of(p.id) == (True, True)


async def test_a_push_whose_app_went_meanwhile_leaves_no_files(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await world.apps.create("doomed", "Doomed")
    adopted, go_on = hold_after_adopt(world, monkeypatch)
    pushing = asyncio.create_task(world.push.ingest("doomed", world.archive("q", tmp_path)))
    await adopted.wait()
    await world.apps.delete("doomed")
    go_on.set()
    with pytest.raises(NotFound):
        await pushing
    assert not list(world.home.executables.iterdir()), "the unpacked package stayed"
    assert not [f for f in world.home.blobs.rglob("*") if f.is_file()], "its bytes stayed"
