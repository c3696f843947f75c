"""Ensemble definitions: create, read, list, rename, delete.

A definition names the run groups an ensemble run fans out to (an instance,
options, repetitions) and the rules that pick the winning child. Every group's
instance must exist when the definition is made (checked in the write that stores it,
so a delete cannot slip in between); a run re-checks it.
"""

from __future__ import annotations

import builtins
import math

from orchestrator.ensemble_models import EnsembleDefinition, EvaluationRule, RunGroup
from orchestrator.errors import Conflict, Invalid, NotFound
from orchestrator.experiments.ensemble_rules import OBJECTIVES, TOLERANCES
from orchestrator.ids import check_label, new_id, relabel, validate_child_id
from orchestrator.registry.lookup import require_app
from orchestrator.registry.resolve import resolve
from orchestrator.store import Store

MAX_CHILDREN = 100
"""Child runs one ensemble run may fan out to (all groups x repetitions)."""


class EnsembleDefinitions:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(self, d: EnsembleDefinition) -> EnsembleDefinition:
        d.id = validate_child_id(d.id or new_id("ensemble"), "ensemble definition")
        d.name = d.name or d.id
        check_label("ensemble definition", d.name, d.description)
        await require_app(self.store.read, d.app_id)
        await self._check(d)
        if await self.store.read.ensembles.get(d.app_id, d.id) is not None:
            raise Conflict(f"ensemble definition {d.id!r} already exists in app {d.app_id!r}")
        async with self.store.write() as w:
            for group in d.run_groups:  # again, in the write: see require_instances
                await resolve(w, d.app_id, group.instance_id, None)
            await w.ensembles.insert(d)
        return d

    async def _check(self, d: EnsembleDefinition) -> None:
        if not d.run_groups:
            raise Invalid("an ensemble definition needs at least one run group")
        if not d.rules:
            raise Invalid("an ensemble definition needs at least one evaluation rule")
        _unique("run group", [g.id for g in d.run_groups])
        _unique("evaluation rule", [r.id for r in d.rules])
        if (total := sum(g.repetitions for g in d.run_groups)) > MAX_CHILDREN:
            raise Invalid(f"the run groups make {total} child runs; at most {MAX_CHILDREN}")
        for group in d.run_groups:
            _check_group(group)
        for rule in d.rules:
            _check_rule(rule)

    async def get(self, app_id: str, definition_id: str) -> EnsembleDefinition:
        d = await self.store.read.ensembles.get(app_id, definition_id)
        if d is None:
            await require_app(self.store.read, app_id)
            raise NotFound(f"ensemble definition {definition_id!r} not found in app {app_id!r}")
        return d

    async def list(self, app_id: str) -> builtins.list[EnsembleDefinition]:
        await require_app(self.store.read, app_id)
        return await self.store.read.ensembles.list(app_id)

    async def update(
        self, app_id: str, definition_id: str, name: str | None, description: str | None
    ) -> EnsembleDefinition:
        d = await self.get(app_id, definition_id)
        relabel("ensemble definition", d, name, description)
        async with self.store.write() as w:
            await w.ensembles.update(d)
        return d

    async def delete(self, app_id: str, definition_id: str) -> None:
        """Runs already made from it keep their own copy of it."""
        await self.get(app_id, definition_id)
        async with self.store.write() as w:
            await w.ensembles.delete(app_id, definition_id)


def _unique(kind: str, ids: builtins.list[str]) -> None:
    for item in ids:
        validate_child_id(item, kind)
    if len(set(ids)) != len(ids):
        raise Invalid(f"{kind} IDs must be unique, got {', '.join(ids)}")


def _check_group(group: RunGroup) -> None:
    if group.repetitions < 1:
        raise Invalid(f"run group {group.id!r}: repetitions must be at least 1")


def _check_rule(rule: EvaluationRule) -> None:
    if rule.objective not in OBJECTIVES:
        raise Invalid(f"rule {rule.id!r}: objective must be one of {', '.join(OBJECTIVES)}")
    if rule.tolerance_type not in TOLERANCES:
        raise Invalid(f"rule {rule.id!r}: tolerance type must be one of {', '.join(TOLERANCES)}")
    if not math.isfinite(rule.tolerance_value) or rule.tolerance_value < 0:
        # NaN compares false with every gap: no child was ever within it
        raise Invalid(f"rule {rule.id!r}: tolerance must be a number, not negative")
    if not rule.statistics_path.startswith("$."):
        raise Invalid(
            f"rule {rule.id!r}: statistics_path must start with '$.', "
            f"like $.result.value (got {rule.statistics_path!r})"
        )
    if rule.index < 0:
        raise Invalid(f"rule {rule.id!r}: index must not be negative")
