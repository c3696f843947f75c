"""What the run page shows of an ensemble: a parent's children and winner, a child's parent.

An ensemble run's page lists every child run with the value each rule read from it and
marks the one it returned; a child's page links its ensemble run and says whether it
won. Read from the same domain view the API's ``.../ensemble`` answers from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.ensemble_models import EvaluationRule
from orchestrator.errors import NotFound
from orchestrator.models import Run, RunType
from orchestrator.services import Services


@dataclass
class ChildRow:
    id: str
    run_group: str | None
    repetition: int | None
    status: str
    values: list[Any]
    """The value each rule read, in the order of ``EnsemblePanel.rules``."""
    winner: bool


@dataclass
class EnsemblePanel:
    definition_id: str
    rules: list[EvaluationRule] = field(default_factory=list)
    children: list[ChildRow] = field(default_factory=list)
    winner_id: str | None = None
    parent_id: str | None = None
    """Set on a child's page: the ensemble run it belongs to."""
    run_group: str | None = None
    repetition: int | None = None


async def ensemble_panel(svc: Services, run: Run) -> EnsemblePanel | None:
    """The panel for an ensemble run or one of its children; None for any other run."""
    if run.run_type == RunType.ENSEMBLE:
        return await _parent(svc, run)
    if run.run_type == RunType.ENSEMBLE_CHILD and run.parent_run_id:
        return await _child(svc, run, run.parent_run_id)
    return None


async def _parent(svc: Services, run: Run) -> EnsemblePanel | None:
    try:
        view = await svc.ensemble_runs.view(run.app_id, run.id)
    except NotFound:
        return None
    record = view.record
    rules = sorted(record.definition.rules, key=lambda r: r.index)
    settled = {item["id"]: item.get("values") or {} for item in record.evaluation or []}
    children = [
        ChildRow(
            id=c.id,
            run_group=c.option_set,
            repetition=c.repetition,
            status=c.status.value,
            values=[settled.get(c.id, {}).get(r.id) for r in rules],
            winner=c.id == record.winner_run_id,
        )
        for c in view.children
    ]
    return EnsemblePanel(record.definition.id, rules, children, record.winner_run_id)


async def _child(svc: Services, run: Run, parent_id: str) -> EnsemblePanel:
    panel = EnsemblePanel("", parent_id=parent_id, run_group=run.option_set)
    panel.repetition = run.repetition
    try:
        view = await svc.ensemble_runs.view(run.app_id, parent_id)
    except NotFound:  # the ensemble run was deleted: the link still says where it came from
        return panel
    panel.definition_id = view.record.definition.id
    panel.winner_id = view.record.winner_run_id
    return panel
