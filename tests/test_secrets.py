"""Secrets, in process: the store's tables (fresh and migrated databases), the rules a
secret's location follows, and the files a run gets and loses."""

from __future__ import annotations

import itertools
import os
import sqlite3
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.errors import Invalid
from orchestrator.models import (
    App,
    EnvStatus,
    Executable,
    Instance,
    Run,
    Secret,
    SecretsCollection,
    SecretType,
    Version,
)
from orchestrator.registry.secrets import make_secret
from orchestrator.runs.backend import StartFailed
from orchestrator.runs.secrets import RECORD, env_of, scrub, write_files
from orchestrator.store import Store
from orchestrator.store.migrations import MIGRATIONS
from tests.conftest import OldDatabase

_ids = itertools.count()


@pytest.fixture(params=["fresh", *(f"from-v{v}" for v in range(1, len(MIGRATIONS)))])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, old_database: OldDatabase
) -> AsyncIterator[Store]:
    path = tmp_path / "orch.db"
    if request.param != "fresh":
        old_database(path, int(request.param.removeprefix("from-v")))
    s = Store(path)
    await s.open()
    yield s
    await s.close()


async def _app(store: Store) -> tuple[str, str]:
    app_id, exe_id = f"app-{next(_ids)}", f"{next(_ids):064x}"
    async with store.write() as w:
        await w.executables.insert_if_missing(
            Executable(exe_id, 1, {}, "python", "py", EnvStatus.NONE), "blobs/x"
        )
        await w.apps.insert(App(app_id, "App", executable_id=exe_id))
    return app_id, exe_id


async def _collection(store: Store, app_id: str, *secrets: Secret) -> str:
    cid = f"sc-{next(_ids)}"
    async with store.write() as w:
        await w.secrets.insert(SecretsCollection(cid, app_id, "c"))
        for secret in secrets:
            await w.secrets.put(app_id, cid, secret)
    return cid


ENV = Secret(SecretType.ENV, "TOKEN", "t0ken")
FILE = Secret(SecretType.FILE, "keys/licence.lic", "lic")


async def test_keys_never_carry_values_and_put_replaces(store: Store) -> None:
    app_id, _ = await _app(store)
    cid = await _collection(store, app_id, ENV, FILE)
    assert await store.read.secrets.keys(app_id, cid) == [
        (SecretType.ENV, "TOKEN"),
        (SecretType.FILE, "keys/licence.lic"),
    ]
    async with store.write() as w:
        await w.secrets.put(app_id, cid, Secret(SecretType.ENV, "TOKEN", "new"))
        await w.secrets.remove(app_id, cid, SecretType.FILE, "keys/licence.lic")
    assert await store.read.secrets.values(app_id, cid) == [Secret(SecretType.ENV, "TOKEN", "new")]


async def test_collections_go_with_their_app(store: Store) -> None:
    app_id, _ = await _app(store)
    cid = await _collection(store, app_id, ENV)
    async with store.write() as w:
        await w.apps.delete(app_id)
    assert await store.read.secrets.get(app_id, cid) is None
    assert await store.read.secrets.values(app_id, cid) == []


async def test_the_table_refuses_unknown_types(store: Store) -> None:
    app_id, _ = await _app(store)
    cid = await _collection(store, app_id)
    with pytest.raises(sqlite3.IntegrityError):
        async with store.write() as w:
            await w.secrets.conn.execute(
                "INSERT INTO secrets (app_id, collection_id, type, location, value)"
                " VALUES (?, ?, 'ssh', 'A', 'v')",
                (app_id, cid),
            )


async def test_runs_and_instances_keep_the_collection_id(store: Store) -> None:
    app_id, exe_id = await _app(store)
    cid = await _collection(store, app_id, ENV)
    run = Run(f"run-{next(_ids):08d}", app_id, "devint", exe_id, secrets_collection_id=cid)
    async with store.write() as w:
        await w.runs.insert(run)
        await w.versions.insert(Version("v1", app_id, "v1", executable_id=exe_id))
        await w.instances.insert(Instance("i1", app_id, "v1", "i1", secrets_collection_id=cid))
    got = await store.read.runs.get(run.id)
    assert got is not None and got.secrets_collection_id == cid
    assert await store.read.secrets.used_by(app_id, cid) == ["i1"]


async def test_the_database_file_is_private(store: Store) -> None:
    assert stat.S_IMODE(os.stat(store.db.path).st_mode) == 0o600


def test_a_secret_never_shows_its_value() -> None:
    assert "t0ken" not in repr(ENV) and "t0ken" not in str([ENV])


@pytest.mark.parametrize(
    ("kind", "location", "says"),
    [
        ("env", "1ABC", "not a variable name"),
        ("env", "ABC\n", "not a variable name"),  # `$` matches before a final newline
        ("env", "HOME", "orch sets"),
        ("env", "ORCH_RUN_ID", "orch sets"),
        ("file", "/abs", "relative"),
        ("file", "..", "'..'"),
        ("file", "a/./b", "'..'"),
        ("file", "a//b", "'..'"),
        ("file", "input/x", "'input' folder"),
        ("file", "a\\b", "forbidden character"),
        ("file", "x" * 256, "1-255"),
        ("tls", "x", "'env' or 'file'"),
    ],
)
def test_locations_that_are_refused(kind: str, location: str, says: str) -> None:
    with pytest.raises(Invalid, match=says):
        make_secret(kind, location, "value")


def test_values_that_are_refused() -> None:
    with pytest.raises(Invalid, match="cannot hold a NUL"):
        make_secret("env", "A", "a\0b")
    with pytest.raises(Invalid, match="over 1024 KiB"):
        make_secret("file", "big", "x" * (1024 * 1024 + 1))
    assert make_secret("file", "bin", "a\0b").value == "a\0b"


def test_files_are_written_private_and_scrubbed(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    written = tmp_path / "work" / "keys" / "licence.lic"
    assert write_files(tmp_path, [ENV, FILE]) == (str(written),)
    assert written.read_text() == "lic"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert env_of([ENV, FILE]) == {"TOKEN": "t0ken"}
    assert "lic" not in (tmp_path / RECORD).read_text().replace("licence.lic", "")
    scrub(tmp_path)
    assert not written.exists() and not (tmp_path / RECORD).exists()


def test_a_package_path_is_never_overwritten(tmp_path: Path) -> None:
    package = tmp_path / "package"
    (package / "keys").mkdir(parents=True)
    (tmp_path / "run" / "work").mkdir(parents=True)
    os.symlink(package / "keys", tmp_path / "run" / "work" / "keys")
    first = Secret(SecretType.FILE, "a.lic", "first")
    with pytest.raises(StartFailed, match="collides"):
        write_files(tmp_path / "run", [first, FILE])
    assert list((package / "keys").iterdir()) == []
    assert sorted(os.listdir(tmp_path / "run" / "work")) == ["keys"]  # a.lic went too


def test_scrub_does_not_follow_a_models_symlink(tmp_path: Path) -> None:
    """A model that replaced its secret's folder with a link to elsewhere: the daemon
    must not delete the file the link now leads to."""
    (tmp_path / "work").mkdir()
    write_files(tmp_path, [FILE])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "licence.lic").write_text("not the secret")
    os.rename(tmp_path / "work" / "keys", tmp_path / "work" / "moved")
    os.symlink(elsewhere, tmp_path / "work" / "keys")
    scrub(tmp_path)
    assert (elsewhere / "licence.lic").read_text() == "not the secret"
