"""Database files as every earlier orch wrote them, for migration and contract tests.

``write_old(path, version)`` applies the first ``version`` migrations with plain
``sqlite3`` (as that orch did; released migrations are never edited) and fills
the file with rows in *that version's* column layout: an app with a pushed
executable, a version, an instance, and runs in every status, including ones
whose only record of why they failed is their message.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from orchestrator.store.migrations import MIGRATIONS

APP = "old-app"
EXE = "e" * 64
T0 = "2026-01-01T00:00:00.000000Z"

OLD_RUNS: dict[str, tuple[str, str | None, int | None]] = {
    # id: (status, error, pid)
    "run-old-ok": ("succeeded", None, 101),
    "run-old-exit": ("failed", "exited with code 3\nTraceback: boom", 102),
    "run-old-signal": ("failed", "killed by signal SIGSEGV (11)\nsegfault", 103),
    "run-old-timeout": ("failed", "timeout of 2 s exceeded: ran 2.0 s", 104),
    "run-old-memory": ("failed", "memory limit 64 MiB exceeded: peak 70 MiB", 105),
    "run-old-env": ("failed", "python environment failed to build:\nno such package", None),
    "run-old-stopped": ("failed", "daemon stopped while the run was running", 106),
    "run-old-canceled": ("canceled", "canceled", 107),
    "run-old-queued": ("queued", None, None),
}


FILLED_AT = 3
"""The last schema whose column layout ``_fill`` writes; a later file is such a file migrated
(as it would be on a machine that ran each orch in turn)."""


def write_old(path: Path, version: int, scripts: list[str] = MIGRATIONS) -> None:
    """A database at schema ``version`` (1..len(MIGRATIONS)-1), filled as that orch did;
    ``scripts`` are the migrations that orch had (``early_migrations`` for drifted ones)."""
    conn = sqlite3.connect(path, isolation_level=None)
    filled_at = min(version, FILLED_AT)
    try:
        _apply(conn, 1, scripts[:filled_at])
        _fill(conn, filled_at)
        _apply(conn, filled_at + 1, scripts[filled_at:version])
    finally:
        conn.close()


def _without(script: str, *parts: str) -> str:
    for part in parts:
        assert part in script, f"migration 4 no longer holds {part!r}"
        script = script.replace(part, "")
    return script


_V4 = MIGRATIONS[3]
_DISK_FULL = ", 'disk_full'"
_ENSEMBLE_COLUMNS = _V4[_V4.index("    run_type ") : _V4.index("    experiment_id ")]
_CONSOLE_INDEXES = _V4[_V4.index(";\n-- The console's runs page") :]
_PARENT_INDEX = (
    ";\nCREATE INDEX runs_by_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL"
)

EARLY_V4: dict[str, str] = {
    "cc2a17e": _without(_V4, _DISK_FULL, _ENSEMBLE_COLUMNS, _CONSOLE_INDEXES, _PARENT_INDEX),
    "067cd0a": _without(_V4, _DISK_FULL, _CONSOLE_INDEXES),
    "5422af7": _without(_V4, _DISK_FULL),
}
"""Migration 4 as three commits of 2026-12-04 had it, before it was edited in place: its
``runs`` table lacked the ensemble columns, the console's indexes and ``disk_full``."""


def early_migrations(commit: str) -> list[str]:
    """The migrations of that early orch: today's, with its own migration 4."""
    return [*MIGRATIONS[:3], EARLY_V4[commit], *MIGRATIONS[4:]]


def _apply(conn: sqlite3.Connection, first: int, scripts: list[str]) -> None:
    for number, script in enumerate(scripts, start=first):
        for statement in (s.strip() for s in script.split(";\n")):
            if statement:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")


def _fill(conn: sqlite3.Connection, version: int) -> None:
    conn.execute(
        "INSERT INTO executables (id, size, blob_path, manifest, type, runtime, created_at)"
        " VALUES (?, 10, 'blobs/x', '{\"type\": \"python\"}', 'python', 'py', ?)",
        (EXE, T0),
    )
    conn.execute(
        "INSERT INTO apps (id, name, executable_id, created_at, updated_at)"
        " VALUES (?, 'Old', ?, ?, ?)",
        (APP, EXE, T0, T0),
    )
    conn.execute(
        "INSERT INTO versions (app_id, id, name, executable_id, created_at, updated_at)"
        " VALUES (?, 'v1', 'one', ?, ?, ?)",
        (APP, EXE, T0, T0),
    )
    conn.execute(
        "INSERT INTO instances (app_id, id, version_id, name, options, created_at, updated_at)"
        " VALUES (?, 'prod', 'v1', 'Prod', '{\"a\": \"1\"}', ?, ?)",
        (APP, T0, T0),
    )
    for n, (run_id, (status, error, pid)) in enumerate(OLD_RUNS.items()):
        stamp = f"2026-01-01T00:00:{n:02d}.000000Z"
        conn.execute(
            "INSERT INTO runs (id, app_id, instance_id, executable_id, status, priority,"
            " input_format, error, pid, pgid, cgroup, created_at, started_at)"
            " VALUES (?, ?, 'prod', ?, ?, 6, 'json', ?, ?, ?, ?, ?, ?)",
            (run_id, APP, EXE, status, error, pid, pid,
             None if pid is None else f"/sys/fs/cgroup/memory/orch-{run_id}",
             stamp, None if status == "queued" else stamp),
        )  # fmt: skip
    if version >= 2:
        conn.execute(
            "INSERT INTO experiments (app_id, id, name, status, requested_runs, created_at,"
            " updated_at) VALUES (?, 'exp-old', 'Old exp', 'completed', 1, ?, ?)",
            (APP, T0, T0),
        )
        conn.execute("UPDATE runs SET experiment_id = 'exp-old' WHERE id = 'run-old-ok'")
