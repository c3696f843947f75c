"""Opening a database written by each earlier schema version brings it forward whole."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from orchestrator.models import FailureKind, RunStatus
from orchestrator.store import Store
from orchestrator.store.migrations import MIGRATIONS
from tests.old_databases import APP, EXE, OLD_RUNS, write_old

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


async def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "orch.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this orch"):
        await Store(path).open()


def _user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()
