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

_V4_PLACEMENT_AND_FAILURES = """
CREATE TABLE runs_v4 (
    id               TEXT PRIMARY KEY,
    app_id           TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    instance_id      TEXT NOT NULL,
    version_id       TEXT,
    executable_id    TEXT NOT NULL,
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
    failure_kind     TEXT CHECK (failure_kind IN (
                         'exit', 'signal', 'timeout', 'memory', 'cpu', 'output', 'disk',
                         'processes', 'open_files', 'spawn', 'environment', 'isolation',
                         'crash', 'worker_lost', 'daemon_stopped', 'external', 'disk_full')),
    failure_limit    REAL,
    failure_measured REAL,
    failure_detail   TEXT NOT NULL DEFAULT '',
    exit_code        INTEGER,
    signal           INTEGER,
    duration_ms      REAL,
    cpu_seconds      REAL,
    peak_memory_mb   REAL,
    placement        TEXT,                      -- the backend's identity of the run (JSON)
    run_type         TEXT NOT NULL DEFAULT 'standard'
                     CHECK (run_type IN ('standard', 'external', 'ensemble', 'ensemble-child')),
    parent_run_id    TEXT,                      -- an ensemble child's ensemble run
    metrics          TEXT,                      -- the run's metrics (JSON), see runs/metrics
    experiment_id    TEXT,
    input_id         TEXT,
    option_set       TEXT,
    repetition       INTEGER NOT NULL DEFAULT 0,
    queuing_disabled INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL,
    started_at       TEXT,
    ended_at         TEXT
);
INSERT INTO runs_v4 (
    id, app_id, instance_id, version_id, executable_id, name, description, status, priority,
    options, option_sources, limits, execution_class, input_format, input_path, input_size,
    output_size, statistics, failure_kind, failure_measured, failure_detail, exit_code,
    signal, duration_ms, cpu_seconds, peak_memory_mb, placement, experiment_id, input_id,
    option_set, repetition, queuing_disabled, created_at, started_at, ended_at)
SELECT
    id, app_id, instance_id, version_id, executable_id, name, description, status, priority,
    options, option_sources, limits, execution_class, input_format, input_path, input_size,
    output_size, statistics,
    -- Older rows only kept the message: its fixed wording tells the kind, once, here.
    CASE
        WHEN status != 'failed' OR error IS NULL THEN NULL
        WHEN error LIKE 'timeout of%' THEN 'timeout'
        WHEN error LIKE 'memory limit%' THEN 'memory'
        WHEN error LIKE 'cpu time limit%' THEN 'cpu'
        WHEN error LIKE 'output limit%' THEN 'output'
        WHEN error LIKE 'process limit%' THEN 'processes'
        WHEN error LIKE 'open files limit%' THEN 'open_files'
        WHEN error LIKE 'could not start the model%' THEN 'spawn'
        WHEN error LIKE 'python environment failed%' THEN 'environment'
        WHEN error LIKE 'daemon stopped%' THEN 'daemon_stopped'
        WHEN error LIKE 'killed by signal%' THEN 'signal'
        WHEN error LIKE 'exited with code%' THEN 'exit'
        ELSE 'crash'
    END,
    CASE
        WHEN status != 'failed' OR error IS NULL THEN NULL
        WHEN error LIKE 'exited with code%' THEN CAST(substr(error, 18) AS INTEGER)
        WHEN error LIKE 'killed by signal%'
            THEN CAST(substr(error, instr(error, '(') + 1) AS INTEGER)
    END,
    CASE
        WHEN status != 'failed' OR error IS NULL THEN ''
        WHEN error LIKE 'exited with code%' OR error LIKE 'killed by signal%'
            THEN CASE WHEN instr(error, char(10)) > 0
                      THEN substr(error, instr(error, char(10)) + 1) ELSE '' END
        WHEN error LIKE 'could not start the model: %' THEN substr(error, 28)
        WHEN error LIKE 'python environment failed to build:%' THEN substr(error, 37)
        WHEN error LIKE 'orch could not execute the run: %' THEN substr(error, 33)
        ELSE error  -- a limit's message, kept whole (its numbers were never stored apart)
    END,
    exit_code, signal, duration_ms, cpu_seconds, peak_memory_mb,
    CASE WHEN pid IS NULL AND cgroup IS NULL THEN NULL
         ELSE json_object('backend', 'local', 'pid', pid, 'pgid', pgid, 'cgroup', cgroup) END,
    experiment_id, input_id, option_set, repetition, queuing_disabled,
    created_at, started_at, ended_at
FROM runs;
DROP TABLE runs;
ALTER TABLE runs_v4 RENAME TO runs;
CREATE INDEX runs_by_app ON runs (app_id, created_at DESC, id DESC);
CREATE INDEX runs_by_instance ON runs (app_id, instance_id, created_at DESC);
CREATE INDEX runs_unfinished ON runs (status) WHERE status IN ('queued', 'running');
CREATE INDEX runs_by_experiment ON runs (experiment_id, status) WHERE experiment_id IS NOT NULL;
CREATE INDEX runs_by_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
-- The console's runs page: newest first across apps, by status, by app and status; each
-- filter walks an index in page order, so a page costs the same at 100,000 runs as at 10.
CREATE INDEX runs_by_created ON runs (created_at DESC, id DESC);
CREATE INDEX runs_by_status ON runs (status, created_at DESC, id DESC);
CREATE INDEX runs_by_app_status ON runs (app_id, status, created_at DESC, id DESC)
"""

_SECRETS = """
CREATE TABLE secrets_collections (
    app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (app_id, id)
);
CREATE TABLE secrets (
    app_id        TEXT NOT NULL,
    collection_id TEXT NOT NULL,
    type          TEXT NOT NULL CHECK (type IN ('env', 'file')),
    location      TEXT NOT NULL,
    value         TEXT NOT NULL,             -- plaintext: the database file is 0600
    PRIMARY KEY (app_id, collection_id, type, location),
    FOREIGN KEY (app_id, collection_id) REFERENCES secrets_collections(app_id, id)
        ON DELETE CASCADE
);
ALTER TABLE instances ADD COLUMN secrets_collection_id TEXT;
ALTER TABLE runs ADD COLUMN secrets_collection_id TEXT
"""

_ACCEPTANCE = """
CREATE TABLE acceptance_tests (
    app_id                TEXT NOT NULL,
    id                    TEXT NOT NULL,
    name                  TEXT NOT NULL,
    description           TEXT NOT NULL DEFAULT '',
    control_instance_id   TEXT NOT NULL,
    control_version_id    TEXT NOT NULL DEFAULT '',
    candidate_instance_id TEXT NOT NULL,
    candidate_version_id  TEXT NOT NULL DEFAULT '',
    metrics               TEXT NOT NULL,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    PRIMARY KEY (app_id, id),
    -- a view on the batch experiment of the same id: it goes when the experiment goes
    FOREIGN KEY (app_id, id) REFERENCES experiments(app_id, id) ON DELETE CASCADE
)
"""

_ENSEMBLES = """
CREATE TABLE ensemble_definitions (
    app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    run_groups  TEXT NOT NULL,                 -- JSON: [{id, instance_id, options, repetitions}]
    rules       TEXT NOT NULL,                 -- JSON: [{id, statistics_path, objective, ...}]
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (app_id, id)
);
CREATE TABLE ensemble_runs (
    run_id        TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    app_id        TEXT NOT NULL,
    definition    TEXT NOT NULL,               -- JSON: the definition as it was at the start
    winner_run_id TEXT,
    evaluation    TEXT                         -- JSON: each child's values, once settled
)
"""

_SCENARIO = """
ALTER TABLE experiments ADD COLUMN type TEXT NOT NULL DEFAULT 'batch'
    CHECK (type IN ('batch', 'scenario', 'acceptance'));
-- an experiment an acceptance test was made on is listed with the acceptance tests
UPDATE experiments SET type = 'acceptance' WHERE EXISTS (
    SELECT 1 FROM acceptance_tests t WHERE t.app_id = experiments.app_id AND t.id = experiments.id
);
CREATE INDEX experiments_by_type ON experiments (app_id, type, created_at DESC);
ALTER TABLE runs ADD COLUMN scenario_id TEXT;
ALTER TABLE runs ADD COLUMN input_set_id TEXT
"""

_SWITCHBACK = """
CREATE TABLE switchback_tests (
    app_id                TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    id                    TEXT NOT NULL,
    name                  TEXT NOT NULL,
    description           TEXT NOT NULL DEFAULT '',
    baseline_instance_id  TEXT NOT NULL,
    candidate_instance_id TEXT NOT NULL,
    unit_minutes          REAL NOT NULL,
    units                 INTEGER NOT NULL,
    status                TEXT NOT NULL
                          CHECK (status IN ('draft', 'started', 'completed', 'canceled')),
    scheduled_start       TEXT,                -- a draft starts by itself then
    plan                  TEXT,                -- JSON {start, seed, unit_minutes, arms}, at start
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    started_at            TEXT,
    ended_at              TEXT,
    PRIMARY KEY (app_id, id)
);
CREATE INDEX switchback_tests_live ON switchback_tests (app_id)
    WHERE status IN ('draft', 'started');
CREATE TABLE switchback_runs (
    run_id     TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    app_id     TEXT NOT NULL,
    test_id    TEXT NOT NULL,                  -- also the run's experiment_id
    unit_index INTEGER NOT NULL,
    arm        TEXT NOT NULL CHECK (arm IN ('baseline', 'candidate'))
);
CREATE INDEX switchback_runs_by_test ON switchback_runs (app_id, test_id)
"""

_SHADOW = """
CREATE TABLE shadow_tests (
    app_id        TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    id            TEXT NOT NULL,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL
                  CHECK (status IN ('draft', 'started', 'completed', 'canceled')),
    comparisons   TEXT NOT NULL,             -- JSON: [{baseline_instance_id, candidate_...}]
    maximum_runs  INTEGER NOT NULL CHECK (maximum_runs BETWEEN 1 AND 300),
    shadowed_runs INTEGER NOT NULL DEFAULT 0,  -- baseline runs shadowed so far
    start_time    TEXT,                      -- a draft starts by itself then
    end_time      TEXT,                      -- a started test completes then
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    started_at    TEXT,
    ended_at      TEXT,
    PRIMARY KEY (app_id, id)
);
CREATE INDEX shadow_tests_by_status ON shadow_tests (status, app_id);
CREATE TABLE shadow_runs (
    app_id                TEXT NOT NULL,
    test_id               TEXT NOT NULL,
    baseline_run_id       TEXT NOT NULL,
    candidate_instance_id TEXT NOT NULL,
    candidate_run_id      TEXT,              -- NULL: the candidate could not be made (error)
    error                 TEXT NOT NULL DEFAULT '',
    created_at            TEXT NOT NULL,
    PRIMARY KEY (app_id, test_id, baseline_run_id, candidate_instance_id),
    FOREIGN KEY (app_id, test_id) REFERENCES shadow_tests(app_id, id) ON DELETE CASCADE
)
"""


_SEED = """
-- the seed of a batch experiment's queue order (experiments/queue_order.py); NULL before
ALTER TABLE experiments ADD COLUMN seed INTEGER
"""


_RUN_EXPERIMENT_TYPE = """
-- what a run's experiment_id names: batch, scenario, acceptance, shadow or switchback
ALTER TABLE runs ADD COLUMN experiment_type TEXT;
UPDATE runs SET experiment_type = (
    SELECT e.type FROM experiments e WHERE e.app_id = runs.app_id AND e.id = runs.experiment_id
) WHERE experiment_id IS NOT NULL;
UPDATE runs SET experiment_type = 'shadow'
    WHERE id IN (SELECT candidate_run_id FROM shadow_runs);
UPDATE runs SET experiment_type = 'switchback' WHERE id IN (SELECT run_id FROM switchback_runs)
"""


_SDK_FIELDS = """
-- fields the SDK sends that Nextmv Cloud keeps: the app's default_experiment_instance,
-- an instance's configuration.queuing (JSON {priority, disabled}; '{}': none set) and
-- the run a run was cloned from (its metadata.tracking.cloned_run_id)
ALTER TABLE apps ADD COLUMN default_experiment_instance_id TEXT;
ALTER TABLE instances ADD COLUMN queuing TEXT NOT NULL DEFAULT '{}';
ALTER TABLE runs ADD COLUMN cloned_run_id TEXT
"""


_REQUEST_OPTIONS = """
-- a run's options as its request gave them (JSON {name: value}), before the manifest's
-- types normalise them into options ("2" for a float option stays "2" here); NULL: a run
-- recorded before, whose request options are read off options and option_sources
ALTER TABLE runs ADD COLUMN request_options TEXT
"""


MIGRATIONS: list[str] = [
    _V1_REGISTRY + _V1_RUNS,
    _V2_EXPERIMENTS,
    _V3_LOCKS,
    _V4_PLACEMENT_AND_FAILURES,
    _SECRETS,
    _ACCEPTANCE,
    _ENSEMBLES,
    _SCENARIO,
    _SWITCHBACK,
    _SHADOW,
    _SEED,
    _RUN_EXPERIMENT_TYPE,
    _SDK_FIELDS,
    _REQUEST_OPTIONS,
]


def statements(script: str) -> list[str]:
    """A migration's statements, one by one (``sqlite3`` runs one statement per call)."""
    return [s.strip() for s in script.split(";\n") if s.strip()]
