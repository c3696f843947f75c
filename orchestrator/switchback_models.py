"""Switchback tests: a baseline and a candidate instance taking turns by time unit.

Plain data shared by the store, the domain and the API (the SDK's ``SwitchbackTest``,
``SwitchbackPlan`` and ``SwitchbackPlanUnit``). The plan is drawn when the test starts
(``experiments/switchback_plan``) and never changes after.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from orchestrator.models import now


class SwitchbackStatus(enum.StrEnum):
    """The SDK's ``ExperimentStatus`` values a switchback test takes here."""

    DRAFT = "draft"
    STARTED = "started"
    COMPLETED = "completed"  # every unit elapsed, or stopped with intent ``complete``
    CANCELED = "canceled"  # stopped with intent ``cancel``

    @property
    def live(self) -> bool:
        """Still able to route runs (now, or once its scheduled start comes)."""
        return self in (SwitchbackStatus.DRAFT, SwitchbackStatus.STARTED)


class Arm(enum.StrEnum):
    """Which side of the comparison a unit (and a run it served) belongs to."""

    BASELINE = "baseline"
    CANDIDATE = "candidate"


@dataclass(frozen=True)
class Plan:
    """Which arm serves each time unit, from ``start`` on; ``seed`` redraws it exactly."""

    start: str
    seed: int
    unit_minutes: float
    arms: tuple[Arm, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "seed": self.seed,
            "unit_minutes": self.unit_minutes,
            "arms": [a.value for a in self.arms],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        arms = tuple(Arm(a) for a in data["arms"])
        return cls(data["start"], int(data["seed"]), float(data["unit_minutes"]), arms)


@dataclass
class SwitchbackTest:
    id: str
    app_id: str
    baseline_instance_id: str
    candidate_instance_id: str
    unit_minutes: float
    units: int
    name: str = ""
    description: str = ""
    status: SwitchbackStatus = SwitchbackStatus.DRAFT
    scheduled_start: str | None = None
    """When a draft starts by itself (the SDK's ``start``); ``None``: only when told to."""
    plan: Plan | None = None
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)
    started_at: str | None = None
    ended_at: str | None = None

    def instance_of(self, arm: Arm) -> str:
        return self.baseline_instance_id if arm == Arm.BASELINE else self.candidate_instance_id


@dataclass(frozen=True)
class ServedRun:
    """What a switchback test records of a run it routed: the unit and the arm."""

    run_id: str
    app_id: str
    test_id: str
    unit_index: int
    arm: Arm
