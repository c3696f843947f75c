"""Conversions between SQLite rows and the shared dataclasses."""

from __future__ import annotations

import json
from typing import Any

from orchestrator.models import (
    App,
    EnvStatus,
    Executable,
    Failure,
    FailureKind,
    Instance,
    Limits,
    PointerMove,
    Queuing,
    Run,
    RunStatus,
    RunType,
    Version,
)
from orchestrator.store.db import Row


def dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def dump_in_order(value: Any) -> str:
    """``dump`` keeping the mapping's order: for one whose order is the user's (an
    experiment's option sets, a scenario test's expanded in the order they were given)."""
    return json.dumps(value, separators=(",", ":"))


def load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def fields(row: Row) -> dict[str, Any]:
    """A row as a dict. ``fields(row)`` looks each column up by name, and ``sqlite3.Row``
    finds a name by comparing it with every column in turn, ignoring case: quadratic in
    the columns, ~15 us for a run's row against ~2 us for this (several per run)."""
    return dict(zip(row.keys(), row, strict=True))


def to_app(row: Row) -> App:
    return App(**fields(row))


def to_executable(row: Row) -> Executable:
    data = fields(row)
    data.pop("blob_path")
    data["manifest"] = load(data["manifest"])
    data["env_status"] = EnvStatus(data["env_status"])
    return Executable(**data)


def to_version(row: Row) -> Version:
    return Version(**fields(row))


def to_instance(row: Row) -> Instance:
    data = fields(row)
    data["options"] = load(data["options"])
    data["limits"] = Limits.from_dict(load(data["limits"]))
    data["locked"] = bool(data["locked"])
    data["queuing"] = Queuing.from_dict(load(data["queuing"]))
    return Instance(**data)


def to_move(row: Row) -> PointerMove:
    return PointerMove(**fields(row))


_RUN_JSON = (
    "options",
    "option_sources",
    "statistics",
    "placement",
    "metrics",
    "request_options",
)
_FAILURE_COLUMNS = ("failure_kind", "failure_limit", "failure_measured", "failure_detail")


def to_run(row: Row) -> Run:
    data = fields(row)
    for key in _RUN_JSON:
        data[key] = load(data[key])
    kind, limit, measured, detail = (data.pop(c) for c in _FAILURE_COLUMNS)
    data["failure"] = None if kind is None else Failure(FailureKind(kind), limit, measured, detail)
    data["limits"] = Limits.from_dict(load(data["limits"]))
    data["status"] = RunStatus(data["status"])
    data["run_type"] = RunType(data["run_type"])
    data["queuing_disabled"] = bool(data["queuing_disabled"])
    return Run(**data)


def failure_values(failure: Failure | None) -> dict[str, Any]:
    """A failure as its four columns (all empty when there is none)."""
    if failure is None:
        return dict(zip(_FAILURE_COLUMNS, (None, None, None, ""), strict=True))
    values = (failure.kind.value, failure.limit, failure.measured, failure.detail)
    return dict(zip(_FAILURE_COLUMNS, values, strict=True))


def run_values(run: Run) -> dict[str, Any]:
    data = dict(run.__dict__)
    for key in _RUN_JSON:
        data[key] = None if data[key] is None else dump(data[key])
    data.update(failure_values(data.pop("failure")))
    data["limits"] = dump(run.limits.to_dict())
    data["status"] = run.status.value
    data["run_type"] = run.run_type.value
    data["queuing_disabled"] = int(run.queuing_disabled)
    return data
