"""Which limits a run gets: daemon defaults < execution class < instance, capped.

A run may ask for its own limits (or an execution class) but never above
what its instance allows; asking for more is a 400, not a silent clamp, so
the user learns where the cap comes from.
"""

from __future__ import annotations

from orchestrator.config import Settings
from orchestrator.errors import Invalid
from orchestrator.models import Limits
from orchestrator.registry.resolve import Target


def instance_caps(settings: Settings, target: Target) -> Limits:
    by_class = settings.limits_for_class(target.execution_class)
    return target.limits.over(by_class.over(settings.limits))


def run_limits(
    settings: Settings, target: Target, requested: Limits, execution_class: str | None
) -> Limits:
    caps = instance_caps(settings, target)
    asked = requested.over(settings.limits_for_class(execution_class))
    problems = asked.exceeding(caps)
    if problems:
        where = f"instance {target.instance_id!r}" if target.instance_id else "this version"
        raise Invalid(f"run limits above the caps of {where}: {'; '.join(problems)}")
    return asked.over(caps)
