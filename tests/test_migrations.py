"""Opening a database written by each earlier schema version brings it forward whole."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from orchestrator.models import FailureKind, RunStatus
from orchestrator.store import Store
from orchestrator.store.db import migrate
from orchestrator.store.drift import SchemaDrift
from orchestrator.store.migrations import MIGRATIONS
from tests.old_databases import APP, EARLY_V4, EXE, OLD_RUNS, early_migrations, write_old

OLD_VERSIONS = range(1, len(MIGRATIONS))


@pytest.mark.parametrize("version", OLD_VERSIONS)
async def test_every_older_schema_opens_and_keeps_its_rows(tmp_path: Path, version: int) -> None:
    path = tmp_path / "orch.db"
    write_old(path, version)
    store = Store(path)
    await store.open()
    try:
        assert _user_version(path) == len(MIGRATIONS)
        app = await store.read.apps.get(APP)
        assert app is not None and app.executable_id == EXE
        instance = await store.read.instances.get(APP, "prod")
        assert instance is not None and instance.options == {"a": "1"}
        runs = {r.id: r for r in await store.read.runs.list(APP, limit=100)}
        assert set(runs) == set(OLD_RUNS)
        for run_id, (status, error, pid) in OLD_RUNS.items():
            run = runs[run_id]
            assert run.status == RunStatus(status)
            assert run.error == error  # the text a user saw before is the text they see now
            if pid is not None:
                assert run.placement is not None and run.placement["pid"] == pid
                assert run.placement["cgroup"].endswith(f"orch-{run_id}")
            else:
                assert run.placement is None
        assert [r.id for r in await store.read.runs.unfinished()] == ["run-old-queued"]
    finally:
        await store.close()


async def test_old_failure_messages_become_typed_failures(tmp_path: Path) -> None:
    """Before schema 4 only the message was kept: its fixed wording gives the kind, once."""
    path = tmp_path / "orch.db"
    write_old(path, 3)
    store = Store(path)
    await store.open()
    try:
        kinds = {
            r.id: r.failure.kind if r.failure else None
            for r in await store.read.runs.list(APP, limit=100)
        }
    finally:
        await store.close()
    assert kinds == {
        "run-old-ok": None,
        "run-old-exit": FailureKind.EXIT,
        "run-old-signal": FailureKind.SIGNAL,
        "run-old-timeout": FailureKind.TIMEOUT,
        "run-old-memory": FailureKind.MEMORY,
        "run-old-env": FailureKind.ENVIRONMENT,
        "run-old-stopped": FailureKind.DAEMON_STOPPED,
        "run-old-canceled": None,
        "run-old-queued": None,
    }


async def test_exit_codes_and_signals_survive_as_numbers(tmp_path: Path) -> None:
    path = tmp_path / "orch.db"
    write_old(path, 1)
    store = Store(path)
    await store.open()
    try:
        exit_run = await store.read.runs.get("run-old-exit")
        signal_run = await store.read.runs.get("run-old-signal")
    finally:
        await store.close()
    assert exit_run is not None and exit_run.failure is not None
    assert (exit_run.failure.measured, exit_run.failure.detail) == (3, "Traceback: boom")
    assert signal_run is not None and signal_run.failure is not None
    assert signal_run.failure.measured == 11


@pytest.mark.parametrize("commit", sorted(EARLY_V4))
async def test_an_early_schema_4_is_repaired_then_migrated(tmp_path: Path, commit: str) -> None:
    """Migration 4 was edited in place for two hours of 2026-12-04: a home from then says
    schema 4 but lacks columns, indexes and a CHECK value; it comes forward whole."""
    path = tmp_path / "orch.db"
    write_old(path, 4, early_migrations(commit))
    store = Store(path)
    await store.open()
    try:
        assert _user_version(path) == len(MIGRATIONS)
        assert {r.id for r in await store.read.runs.list(APP, limit=100)} == set(OLD_RUNS)
    finally:
        await store.close()
    assert _schema(path) == _schema_of_new(tmp_path / "new.db")
    conn = sqlite3.connect(path)  # a run may now fail for a full disk
    try:
        conn.execute("UPDATE runs SET failure_kind = 'disk_full' WHERE id = 'run-old-exit'")
    finally:
        conn.close()


async def test_a_drift_that_would_lose_data_is_refused_untouched(tmp_path: Path) -> None:
    """A table with a column its schema version does not know (a development branch's
    home) cannot be rebuilt without losing that column: refused, and the file unchanged."""
    path = tmp_path / "orch.db"
    write_old(path, 4)
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE runs ADD COLUMN branch_only TEXT")
    conn.close()
    before = _dump(path)
    with pytest.raises(SchemaDrift, match=r"orch\.db: its table runs has column\(s\) branch_only"):
        await Store(path).open()
    assert _dump(path) == before


async def test_a_failed_migration_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    """All pending migrations commit together: one that fails (here migration 10 meets
    a table of its name already there) leaves the version an older orch can still open."""
    path = tmp_path / "orch.db"
    write_old(path, 4)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE shadow_tests (x)")
    conn.close()
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        await Store(path).open()
    assert _user_version(path) == 4
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == len(OLD_RUNS)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "secrets" not in tables  # migration 5's
    finally:
        conn.close()


async def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "orch.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(SchemaDrift, match="newer than this orch"):
        await Store(path).open()


def _user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def _schema(path: Path) -> list[tuple[str, str]]:
    """Every table and index, as SQLite would read its statement (comments and spacing
    aside): what a database *is*, whichever way it came to be."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
        ).fetchall()
    finally:
        conn.close()
    return [(name, " ".join(re.sub(r"--[^\n]*", "", sql).split())) for name, sql in rows]


def _schema_of_new(path: Path) -> list[tuple[str, str]]:
    write_old(path, 4)
    conn = sqlite3.connect(path)
    try:
        migrate(conn)
    finally:
        conn.close()
    return _schema(path)


def _dump(path: Path) -> tuple[int, list[str]]:
    conn = sqlite3.connect(path)
    try:
        return _user_version(path), list(conn.iterdump())
    finally:
        conn.close()
