"""Switchback tests and their runs → the JSON of the SDK's ``SwitchbackTest`` and ``Run``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from orchestrator.api import run_wire
from orchestrator.api.wire import live_test_metadata
from orchestrator.experiments.summary import TargetSummary
from orchestrator.experiments.switchback import RoutedRun
from orchestrator.switchback_models import Arm, SwitchbackTest


def plan(t: SwitchbackTest) -> dict[str, Any]:
    """``SwitchbackPlan``: each unit's instance once drawn (at the start); before that, the
    scheduled start if any. ``seed`` redraws it; the unit size and count are always there."""
    shape = {"unit_duration_minutes": t.unit_minutes, "number_of_units": t.units}
    if t.plan is None:
        return {"start": t.scheduled_start} | shape
    units = [
        {"index": i, "instance_id": t.instance_of(arm), "duration_minutes": t.unit_minutes}
        | {"arm": arm.value}
        for i, arm in enumerate(t.plan.arms)
    ]
    return {"start": t.plan.start, "units": units, "seed": t.plan.seed} | shape


def switchback_test(t: SwitchbackTest) -> dict[str, Any]:
    """``SwitchbackTest`` (its runs come from ``.../runs``, as the SDK fetches them)."""
    return live_test_metadata(t) | {
        "started_at": t.started_at,
        "completed_at": t.ended_at,
        "comparison": {
            "baseline_instance_id": t.baseline_instance_id,
            "candidate_instance_id": t.candidate_instance_id,
        },
        "plan": plan(t),
    }


def routed_run(item: RoutedRun) -> dict[str, Any]:
    """An SDK ``Run`` with the unit and arm that served it (the SDK ignores extra keys)."""
    served = item.served
    extra = {} if served is None else {"unit_index": served.unit_index, "arm": served.arm.value}
    return run_wire.list_item(item.run) | {"switchback": extra}


def summary(arms: list[tuple[Arm, TargetSummary]]) -> dict[str, Any]:
    """Per arm: its instance (``target``), run counts by outcome, metric distributions."""
    return {"arms": [{"arm": arm.value} | asdict(target) for arm, target in arms]}
