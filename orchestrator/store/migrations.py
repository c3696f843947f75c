"""Numbered schema migrations; index + 1 is the ``PRAGMA user_version`` they lead to.

Never edit a released migration: append a new one. Statements are separated
by ``;`` at the end of a line.
"""

from __future__ import annotations

_V1_REGISTRY = """
CREATE TABLE executables (
    id          TEXT PRIMARY KEY,          -- sha256 of the package bytes
    size        INTEGER NOT NULL,
    blob_path   TEXT NOT NULL,
    manifest    TEXT NOT NULL,             -- app.yaml as JSON
    type        TEXT NOT NULL,
    runtime     TEXT NOT NULL,
    env_status  TEXT NOT NULL DEFAULT 'none'
                CHECK (env_status IN ('none', 'building', 'ready', 'failed')),
    env_message TEXT NOT NULL DEFAULT '',
    env_path    TEXT,
    created_at  TEXT NOT NULL
);
CREATE TABLE apps (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    default_instance_id TEXT,
    executable_id       TEXT REFERENCES executables(id),
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);
CREATE TABLE versions (
    app_id        TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    id            TEXT NOT NULL,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    executable_id TEXT NOT NULL REFERENCES executables(id),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (app_id, id)
);
CREATE TABLE instances (
    app_id          TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    id              TEXT NOT NULL,
    version_id      TEXT NOT NULL,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    options         TEXT NOT NULL DEFAULT '{}',
    limits          TEXT NOT NULL DEFAULT '{}',
    execution_class TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (app_id, id),
    FOREIGN KEY (app_id, version_id) REFERENCES versions(app_id, id)
);
CREATE TABLE pointer_moves (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    pointer     TEXT NOT NULL,
    from_target TEXT,
    to_target   TEXT,
    action      TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX pointer_moves_by_app ON pointer_moves (app_id, id);
CREATE TABLE uploads (
    id         TEXT PRIMARY KEY,
    token      TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL CHECK (kind IN ('binary', 'input')),
    app_id     TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    path       TEXT NOT NULL,
    size       INTEGER,
    sha256     TEXT,
    expires_at TEXT NOT NULL,
    received_at TEXT,
    created_at TEXT NOT NULL
);
"""

_V1_RUNS = """
CREATE TABLE runs (
    id               TEXT PRIMARY KEY,
    app_id           TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    instance_id      TEXT NOT NULL,
    version_id       TEXT,
    executable_id    TEXT NOT NULL,             -- a record, kept after the package is gone
    name             TEXT NOT NULL DEFAULT '',
    description      TEXT NOT NULL DEFAULT '',
    status           TEXT NOT NULL
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
    priority         INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 9),
    options          TEXT NOT NULL DEFAULT '{}',
    option_sources   TEXT NOT NULL DEFAULT '{}',
    limits           TEXT NOT NULL DEFAULT '{}',
    execution_class  TEXT,
    input_format     TEXT NOT NULL,
    input_path       TEXT,
    input_size       INTEGER NOT NULL DEFAULT 0,
    output_size      INTEGER NOT NULL DEFAULT 0,
    statistics       TEXT,
    error            TEXT,
    exit_code        INTEGER,
    signal           INTEGER,
    duration_ms      REAL,
    cpu_seconds      REAL,
    peak_memory_mb   REAL,
    pid              INTEGER,
    pgid             INTEGER,
    cgroup           TEXT,
    experiment_id    TEXT,
    input_id         TEXT,
    queuing_disabled INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL,
    started_at       TEXT,
    ended_at         TEXT
);
CREATE INDEX runs_by_app ON runs (app_id, created_at DESC, id DESC);
CREATE INDEX runs_by_instance ON runs (app_id, instance_id, created_at DESC);
CREATE INDEX runs_unfinished ON runs (status) WHERE status IN ('queued', 'running');
CREATE INDEX runs_by_experiment ON runs (experiment_id) WHERE experiment_id IS NOT NULL;
"""

_V2_EXPERIMENTS = """
CREATE TABLE inputs (
    app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    sha256      TEXT NOT NULL,             -- the bytes live in blobs/, stored once
    size        INTEGER NOT NULL,
    format      TEXT NOT NULL DEFAULT 'json',
    run_id      TEXT,                      -- the run it was taken from, if any
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (app_id, id)
);
CREATE TABLE input_sets (
    app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (app_id, id)
);
CREATE TABLE input_set_members (
    app_id       TEXT NOT NULL,
    input_set_id TEXT NOT NULL,
    input_id     TEXT NOT NULL,
    position     INTEGER NOT NULL,
    PRIMARY KEY (app_id, input_set_id, input_id),
    FOREIGN KEY (app_id, input_set_id) REFERENCES input_sets(app_id, id) ON DELETE CASCADE,
    FOREIGN KEY (app_id, input_id) REFERENCES inputs(app_id, id)
);
CREATE TABLE experiments (
    app_id         TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    id             TEXT NOT NULL,
    name           TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    input_set_id   TEXT,
    status         TEXT NOT NULL
                   CHECK (status IN ('started', 'completed', 'failed', 'canceled')),
    option_sets    TEXT NOT NULL DEFAULT '{}',
    targets        TEXT NOT NULL DEFAULT '[]',
    baseline       TEXT,
    objective      TEXT NOT NULL DEFAULT 'min' CHECK (objective IN ('min', 'max')),
    requested_runs INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    ended_at       TEXT,
    PRIMARY KEY (app_id, id)
);
ALTER TABLE runs ADD COLUMN option_set TEXT;
ALTER TABLE runs ADD COLUMN repetition INTEGER NOT NULL DEFAULT 0
"""

_V3_LOCKS = """
ALTER TABLE instances ADD COLUMN locked INTEGER NOT NULL DEFAULT 0
"""

_V4_CONSOLE = """
CREATE INDEX runs_by_created ON runs (created_at DESC, id DESC);
CREATE INDEX runs_by_status ON runs (status, created_at DESC, id DESC);
CREATE INDEX runs_by_app_status ON runs (app_id, status, created_at DESC, id DESC)
"""
"""The console's runs page: newest first across apps, by status, by app and status; each
filter walks an index in page order, so a page costs the same at 100,000 runs as at 10."""

MIGRATIONS: list[str] = [_V1_REGISTRY + _V1_RUNS, _V2_EXPERIMENTS, _V3_LOCKS, _V4_CONSOLE]
