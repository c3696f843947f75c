"""Managed inputs, input sets and batch experiments."""

from __future__ import annotations

import builtins
from typing import Any

from orchestrator.models import (
    Experiment,
    ExperimentStatus,
    ExperimentType,
    InputSet,
    ManagedInput,
    now,
)
from orchestrator.store.db import Connection
from orchestrator.store.rows import dump, dump_in_order, load


class InputRepo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get(self, app_id: str, input_id: str) -> ManagedInput | None:
        row = await self.conn.one(
            "SELECT * FROM inputs WHERE app_id = ? AND id = ?", (app_id, input_id)
        )
        return None if row is None else ManagedInput(**dict(row))

    async def list(self, app_id: str) -> builtins.list[ManagedInput]:
        rows = await self.conn.all(
            "SELECT * FROM inputs WHERE app_id = ? ORDER BY created_at, id", (app_id,)
        )
        return [ManagedInput(**dict(r)) for r in rows]

    async def insert(self, i: ManagedInput) -> None:
        await self.conn.execute(
            "INSERT INTO inputs (app_id, id, name, description, sha256, size, format, run_id,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                i.app_id,
                i.id,
                i.name,
                i.description,
                i.sha256,
                i.size,
                i.format,
                i.run_id,
                i.created_at,
                i.updated_at,
            ),
        )

    async def update(self, i: ManagedInput) -> None:
        i.updated_at = now()
        await self.conn.execute(
            "UPDATE inputs SET name = ?, description = ?, updated_at = ?"
            " WHERE app_id = ? AND id = ?",
            (i.name, i.description, i.updated_at, i.app_id, i.id),
        )

    async def delete(self, app_id: str, input_id: str) -> None:
        await self.conn.execute(
            "DELETE FROM inputs WHERE app_id = ? AND id = ?", (app_id, input_id)
        )

    async def in_sets(self, app_id: str, input_id: str) -> builtins.list[str]:
        rows = await self.conn.all(
            "SELECT input_set_id FROM input_set_members WHERE app_id = ? AND input_id = ?",
            (app_id, input_id),
        )
        return [r["input_set_id"] for r in rows]

    async def orphan_blobs(self, shas: builtins.list[str]) -> builtins.list[str]:
        """Those of ``shas`` that no input of any app still uses."""
        out = []
        for sha in set(shas):
            if (
                await self.conn.scalar("SELECT 1 FROM inputs WHERE sha256 = ? LIMIT 1", (sha,))
                is None
            ):
                out.append(sha)
        return out

    async def all_shas(self) -> set[str]:
        """The blobs kept inputs use, across apps (start-up compares them with the files)."""
        return {r["sha256"] for r in await self.conn.all("SELECT DISTINCT sha256 FROM inputs")}

    async def shas_of_app(self, app_id: str) -> builtins.list[str]:
        rows = await self.conn.all("SELECT DISTINCT sha256 FROM inputs WHERE app_id = ?", (app_id,))
        return [r["sha256"] for r in rows]


class InputSetRepo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get(self, app_id: str, set_id: str) -> InputSet | None:
        row = await self.conn.one(
            "SELECT * FROM input_sets WHERE app_id = ? AND id = ?", (app_id, set_id)
        )
        if row is None:
            return None
        return InputSet(**dict(row), input_ids=await self._members(app_id, set_id))

    async def list(self, app_id: str) -> builtins.list[InputSet]:
        rows = await self.conn.all(
            "SELECT * FROM input_sets WHERE app_id = ? ORDER BY created_at, id", (app_id,)
        )
        return [InputSet(**dict(r), input_ids=await self._members(app_id, r["id"])) for r in rows]

    async def _members(self, app_id: str, set_id: str) -> builtins.list[str]:
        rows = await self.conn.all(
            "SELECT input_id FROM input_set_members WHERE app_id = ? AND input_set_id = ?"
            " ORDER BY position",
            (app_id, set_id),
        )
        return [r["input_id"] for r in rows]

    async def insert(self, s: InputSet) -> None:
        await self.conn.execute(
            "INSERT INTO input_sets (app_id, id, name, description, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (s.app_id, s.id, s.name, s.description, s.created_at, s.updated_at),
        )
        await self.set_members(s.app_id, s.id, s.input_ids)

    async def set_members(self, app_id: str, set_id: str, input_ids: builtins.list[str]) -> None:
        await self.conn.execute(
            "DELETE FROM input_set_members WHERE app_id = ? AND input_set_id = ?", (app_id, set_id)
        )
        await self.conn.executemany(
            "INSERT INTO input_set_members (app_id, input_set_id, input_id, position)"
            " VALUES (?, ?, ?, ?)",
            [(app_id, set_id, input_id, pos) for pos, input_id in enumerate(input_ids)],
        )

    async def update(self, s: InputSet) -> None:
        s.updated_at = now()
        await self.conn.execute(
            "UPDATE input_sets SET name = ?, description = ?, updated_at = ?"
            " WHERE app_id = ? AND id = ?",
            (s.name, s.description, s.updated_at, s.app_id, s.id),
        )
        await self.set_members(s.app_id, s.id, s.input_ids)

    async def delete(self, app_id: str, set_id: str) -> None:
        await self.conn.execute(
            "DELETE FROM input_sets WHERE app_id = ? AND id = ?", (app_id, set_id)
        )


def _experiment(row: Any) -> Experiment:
    data = dict(row)
    data["status"] = ExperimentStatus(data["status"])
    data["type"] = ExperimentType(data["type"])
    data["option_sets"] = load(data["option_sets"])
    data["targets"] = load(data["targets"])
    return Experiment(**data)


class ExperimentRepo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get(self, app_id: str, exp_id: str) -> Experiment | None:
        row = await self.conn.one(
            "SELECT * FROM experiments WHERE app_id = ? AND id = ?", (app_id, exp_id)
        )
        return None if row is None else _experiment(row)

    async def list(
        self, app_id: str, kind: ExperimentType | None = None
    ) -> builtins.list[Experiment]:
        """Newest first; with ``kind``, only the experiments of that type."""
        if kind is None:
            rows = await self.conn.all(
                "SELECT * FROM experiments WHERE app_id = ? ORDER BY created_at DESC", (app_id,)
            )
        else:
            rows = await self.conn.all(
                "SELECT * FROM experiments WHERE app_id = ? AND type = ? ORDER BY created_at DESC",
                (app_id, kind.value),
            )
        return [_experiment(r) for r in rows]

    async def started(self) -> builtins.list[Experiment]:
        rows = await self.conn.all("SELECT * FROM experiments WHERE status = 'started'")
        return [_experiment(r) for r in rows]

    async def ended_with_unfinished_runs(self) -> builtins.list[tuple[str, str, str]]:
        """(app id, experiment id, status) of every experiment that has ended while some of
        its runs are queued or running: what a daemon stopped in the middle of a cancel
        left (recovery cancels them). By the index on a run's (experiment, status)."""
        rows = await self.conn.all(
            "SELECT app_id, id, status FROM experiments e WHERE status != 'started' AND EXISTS"
            " (SELECT 1 FROM runs r WHERE r.experiment_id = e.id AND r.app_id = e.app_id"
            " AND r.status IN ('queued', 'running'))"
        )
        return [(r["app_id"], r["id"], r["status"]) for r in rows]

    async def insert(self, e: Experiment) -> None:
        await self.conn.execute(
            "INSERT INTO experiments (app_id, id, name, description, input_set_id, status,"
            " option_sets, targets, baseline, objective, type, seed, requested_runs,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                e.app_id,
                e.id,
                e.name,
                e.description,
                e.input_set_id,
                e.status.value,
                dump_in_order(e.option_sets),
                dump(e.targets),
                e.baseline,
                e.objective,
                e.type.value,
                e.seed,
                e.requested_runs,
                e.created_at,
                e.updated_at,
            ),
        )

    async def update(self, e: Experiment) -> None:
        e.updated_at = now()
        await self.conn.execute(
            "UPDATE experiments SET name = ?, description = ?, status = ?, ended_at = ?,"
            " updated_at = ? WHERE app_id = ? AND id = ?",
            (e.name, e.description, e.status.value, e.ended_at, e.updated_at, e.app_id, e.id),
        )

    async def set_type(self, app_id: str, exp_id: str, kind: ExperimentType) -> None:
        """The experiment and its runs, which carry its type for the SDK."""
        await self.conn.execute(
            "UPDATE experiments SET type = ? WHERE app_id = ? AND id = ?",
            (kind.value, app_id, exp_id),
        )
        await self.conn.execute(
            "UPDATE runs SET experiment_type = ? WHERE app_id = ? AND experiment_id = ?",
            (kind.value, app_id, exp_id),
        )

    async def set_objective(self, app_id: str, exp_id: str, objective: str) -> None:
        """Which way result.value is better, as an acceptance test made on it says."""
        await self.conn.execute(
            "UPDATE experiments SET objective = ? WHERE app_id = ? AND id = ?",
            (objective, app_id, exp_id),
        )

    async def join(self, app_id: str, exp_id: str) -> bool:
        """One more run for an experiment not canceled (``new_run(batch_experiment_id=...)``):
        counted as requested, and the experiment started again if it had ended, since an
        experiment ends when its last run does. Its targets stay as it was made (they name
        what it was asked to compare). False: canceled or deleted meanwhile (the guard makes
        it race-free)."""
        changed = await self.conn.execute(
            "UPDATE experiments SET requested_runs = requested_runs + 1, status = 'started',"
            " ended_at = NULL, updated_at = ? WHERE app_id = ? AND id = ? AND status != 'canceled'",
            (now(), app_id, exp_id),
        )
        return changed == 1

    async def finish(self, app_id: str, exp_id: str, status: ExperimentStatus) -> bool:
        """Only a started experiment can end, once (the guard makes it race-free)."""
        stamp = now()
        changed = await self.conn.execute(
            "UPDATE experiments SET status = ?, ended_at = ?, updated_at = ?"
            " WHERE app_id = ? AND id = ? AND status = 'started'",
            (status.value, stamp, stamp, app_id, exp_id),
        )
        return changed == 1

    async def delete(self, app_id: str, exp_id: str) -> None:
        await self.conn.execute(
            "DELETE FROM experiments WHERE app_id = ? AND id = ?", (app_id, exp_id)
        )
