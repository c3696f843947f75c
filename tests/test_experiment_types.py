"""The experiment type column: an older database is backfilled, lists filter by type."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from orchestrator.models import Experiment, ExperimentType
from orchestrator.store import Store
from orchestrator.store.migrations import _SCENARIO, MIGRATIONS
from tests.old_databases import APP, T0, write_old

BEFORE_TYPES = MIGRATIONS.index(_SCENARIO)
"""The schema version just before ``_SCENARIO`` (versions count migrations from 1)."""


def _experiment(conn: sqlite3.Connection, exp_id: str) -> None:
    conn.execute(
        "INSERT INTO experiments (app_id, id, name, status, requested_runs, created_at,"
        " updated_at) VALUES (?, ?, ?, 'completed', 2, ?, ?)",
        (APP, exp_id, exp_id, T0, T0),
    )


async def test_old_experiments_become_batch_or_acceptance(tmp_path: Path) -> None:
    path = tmp_path / "orch.db"
    write_old(path, BEFORE_TYPES)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        _experiment(conn, "plain")
        _experiment(conn, "gated")
        conn.execute(
            "INSERT INTO acceptance_tests (app_id, id, name, control_instance_id,"
            " candidate_instance_id, metrics, created_at, updated_at)"
            " VALUES (?, 'gated', 'g', 'a', 'b', '[]', ?, ?)",
            (APP, T0, T0),
        )
    finally:
        conn.close()
    store = Store(path)
    await store.open()
    try:
        kinds = {e.id: e.type for e in await store.read.experiments.list(APP)}
        batch = await store.read.experiments.list(APP, ExperimentType.BATCH)
        async with store.write() as w:
            await w.experiments.insert(
                Experiment("sc", APP, "sc", None, 1, type=ExperimentType.SCENARIO)
            )
        scenario = await store.read.experiments.list(APP, ExperimentType.SCENARIO)
    finally:
        await store.close()
    assert kinds["plain"] == ExperimentType.BATCH
    assert kinds["gated"] == ExperimentType.ACCEPTANCE
    assert {e.id for e in batch} == set(kinds) - {"gated"}
    assert [e.id for e in scenario] == ["sc"]
