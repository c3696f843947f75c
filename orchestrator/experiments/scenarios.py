"""A scenario test's runs from its scenarios, as the SDK's ``new_scenario_test`` builds them.

The SDK expands scenarios on the client and sends the runs; orch's CLI sends the scenarios
and this module expands them the same way, so both make the same test: for each scenario
(``scenario-<n>`` when unnamed, in order), each combination of its option values (the
cross product, option set ``<scenario>_<k>``), each input of its input set (or its listed
inputs), each repetition. The runs count is scenarios x inputs x variations x repetitions.
Either way the daemon queues them like any experiment's runs (``queue_order``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from orchestrator.errors import Invalid

T = TypeVar("T")
MAX_OPTION_SETS = 1000
"""Variations of one scenario; a cross product beyond this is almost surely a typo."""


@dataclass(frozen=True)
class ScenarioSpec:
    """One scenario: an instance, its inputs (an input set or listed inputs), variations."""

    instance_id: str
    scenario_id: str | None = None
    input_set_id: str | None = None
    input_ids: tuple[str, ...] = ()
    configuration: tuple[tuple[str, tuple[str, ...]], ...] = field(default_factory=tuple)
    """(option name, its values), in order: each value of each option is one variation."""


@dataclass(frozen=True)
class ScenarioRun:
    input_id: str
    instance_id: str
    option_set: str
    scenario_id: str
    repetition: int
    input_set_id: str | None


def scenario_ids(specs: list[ScenarioSpec]) -> list[str]:
    """Each scenario's id (``scenario-<n>``, 1-based, when unnamed); duplicates refused."""
    ids = [s.scenario_id or f"scenario-{n}" for n, s in enumerate(specs, start=1)]
    for scenario_id in ids:
        if ids.count(scenario_id) > 1:
            raise Invalid(f"scenario id {scenario_id!r} appears more than once")
    return ids


def option_combinations(spec: ScenarioSpec) -> list[dict[str, str]]:
    """The cross product of the scenario's option values (one empty set without any)."""
    for name, values in spec.configuration:
        if not values:
            raise Invalid(f"option {name!r} of a scenario has no values")
    count = math.prod(len(values) for _, values in spec.configuration)
    if count > MAX_OPTION_SETS:  # counted before it is built: 8 options of 10 values is 10^8
        raise Invalid(f"a scenario has {count} option variations (at most {MAX_OPTION_SETS})")
    names = [name for name, _ in spec.configuration]
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(v for _, v in spec.configuration))
    ]


def expand(
    specs: list[ScenarioSpec], members: dict[str, list[str]], repetitions: int, most: int
) -> tuple[dict[str, dict[str, str]], list[ScenarioRun]]:
    """The option sets and runs of a scenario test.

    ``members``: the input ids of every input set a scenario names; ``repetitions``: runs
    per combination (at least 1); ``most``: the runs an experiment may plan, checked
    before each scenario's runs are made.
    """
    if not specs:
        raise Invalid("a scenario test needs at least one scenario")
    if repetitions < 1:
        raise Invalid(f"repetitions must be at least 1, got {repetitions}")
    option_sets: dict[str, dict[str, str]] = {}
    runs: list[ScenarioRun] = []
    for scenario_id, spec in zip(scenario_ids(specs), specs, strict=True):
        inputs = _inputs_of(scenario_id, spec, members)
        _once_each(scenario_id, spec)
        combos = option_combinations(spec)
        planned = len(runs) + len(combos) * len(inputs) * repetitions
        if planned > most:
            raise too_many_runs(planned, most)
        for k, combo in enumerate(combos):
            option_sets[f"{scenario_id}_{k}"] = combo
            runs.extend(
                ScenarioRun(
                    input_id,
                    spec.instance_id,
                    f"{scenario_id}_{k}",
                    scenario_id,
                    rep,
                    spec.input_set_id,
                )
                for input_id in inputs
                for rep in range(repetitions)
            )
    return option_sets, runs


def _once_each(scenario_id: str, spec: ScenarioSpec) -> None:
    """An option, a value of it or a listed input given twice would make the same runs twice
    (under two option set names, or one input twice in each): almost surely a typo, so it
    is refused rather than quietly made once. (An input set's members are unique already.)"""
    if (input_id := repeated(spec.input_ids)) is not None:
        raise Invalid(f"scenario {scenario_id!r} lists input {input_id!r} more than once")
    if (name := repeated(n for n, _ in spec.configuration)) is not None:
        raise Invalid(f"scenario {scenario_id!r} gives option {name!r} more than once")
    for name, values in spec.configuration:
        if (value := repeated(values)) is not None:
            raise Invalid(
                f"scenario {scenario_id!r}: option {name!r} gives value {value!r} more than once"
            )


def repeated(items: Iterable[str]) -> str | None:
    """The first item given a second time (None: each is given once)."""
    seen: set[str] = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


def _inputs_of(scenario_id: str, spec: ScenarioSpec, members: dict[str, list[str]]) -> list[str]:
    if bool(spec.input_set_id) == bool(spec.input_ids):
        raise Invalid(f"scenario {scenario_id!r}: give an input set or a list of inputs")
    inputs = members[spec.input_set_id] if spec.input_set_id else list(spec.input_ids)
    if not inputs:
        raise Invalid(f"scenario {scenario_id!r} has no inputs")
    return inputs


def too_many_runs(planned: int, most: int) -> Invalid:
    return Invalid(
        f"the experiment would make {planned} runs (at most {most}): use fewer inputs, "
        "option sets, repetitions or targets, or split it"
    )
