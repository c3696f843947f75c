"""The switchback planner: a random, balanced assignment of time units to arms.

Pure functions of their arguments (no clock, no store), so a plan is reproduced
from its recorded seed and tests can ask "which arm serves at this moment" for
any moment they choose.

Balanced: of ``units`` units, half go to each arm; with an odd count the extra
unit's arm is drawn too. The order is a seeded shuffle, so each unit is baseline
or candidate at random while neither arm can starve.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from orchestrator.models import TIMESTAMP_FORMAT
from orchestrator.switchback_models import Arm, Plan

Clock = Callable[[], datetime]
"""What time it is (UTC, aware); injected so tests can step through units."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    """A moment as the store's timestamp text (``models.now``'s format)."""
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def moment(text: str) -> datetime:
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC)


def draw(seed: int, units: int, unit_minutes: float, start: datetime) -> Plan:
    """The plan of ``units`` units of ``unit_minutes`` from ``start``, shuffled by ``seed``."""
    rng = random.Random(seed)
    half = units // 2
    arms = [Arm.BASELINE] * half + [Arm.CANDIDATE] * half
    if units % 2:
        arms.append(rng.choice((Arm.BASELINE, Arm.CANDIDATE)))
    rng.shuffle(arms)
    return Plan(stamp(start), seed, unit_minutes, tuple(arms))


def unit_at(plan: Plan, at: datetime) -> int | None:
    """The index of the unit running at ``at``; ``None`` before the start or after the end."""
    elapsed = (at - moment(plan.start)).total_seconds()
    if elapsed < 0:
        return None
    index = int(elapsed // (plan.unit_minutes * 60))
    return index if index < len(plan.arms) else None


def end_of(plan: Plan) -> datetime:
    """When the last unit ends."""
    return moment(plan.start) + timedelta(minutes=plan.unit_minutes * len(plan.arms))
