"""One evaluation engine for the CI gate (``--fail-if``) and acceptance tests.

A criterion is a metric path, an operator, a tolerance and a statistic. It is evaluated on
a *control* value and a *candidate* value and answers whether ``candidate OP reference``
holds, where the reference is the control, optionally moved by the gate's arithmetic
(``baseline * 1.01``: ``factor``; ``baseline + 0.5``: ``offset``), and the tolerance is the
slack the candidate is allowed on the side the operator looks at:

====  ================================  ===================================
op    holds when                        e.g. tolerance absolute 1, ref 10
====  ================================  ===================================
gt    candidate >  reference - slack    candidate > 9
ge    candidate >= reference - slack    candidate >= 9
lt    candidate <  reference + slack    candidate < 11
le    candidate <= reference + slack    candidate <= 11
eq    |candidate - reference| <= slack  9 <= candidate <= 11
ne    |candidate - reference| >  slack  candidate < 9 or candidate > 11
====  ================================  ===================================

``slack`` is the tolerance's value (absolute) or the value times ``|reference|``
(relative: 0.05 is 5 % of the reference). With no tolerance every comparison is exact.
The acceptance test reads "the candidate passes when the criterion holds"; the gate reads
"the candidate fails when its condition holds" (a tolerance there would loosen a failure,
so the gate uses none and moves the reference instead).

Metric values are read with ``metric_value`` from a run's facts, so the gate, the
acceptance test and whatever else reads "a metric of a run" agree on what a path means.
"""

from __future__ import annotations

import enum
import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from orchestrator.experiments.stats import Statistic
from orchestrator.experiments.summary import (
    CUSTOM_PREFIX,
    PEAK_MEMORY,
    WALL_TIME,
    RunFacts,
)


class Operator(enum.StrEnum):
    """Nextmv's ``Comparison`` values; ``symbol`` is the gate's spelling."""

    EQ = "eq"
    GT = "gt"
    GE = "ge"
    LT = "lt"
    LE = "le"
    NE = "ne"

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]

    @classmethod
    def from_symbol(cls, symbol: str) -> Operator:
        return next(op for op, sym in _SYMBOLS.items() if sym == symbol)


_SYMBOLS = {
    Operator.EQ: "==",
    Operator.GT: ">",
    Operator.GE: ">=",
    Operator.LT: "<",
    Operator.LE: "<=",
    Operator.NE: "!=",
}
_COMPARE: dict[Operator, Callable[[float, float], bool]] = {
    Operator.GT: operator.gt,
    Operator.GE: operator.ge,
    Operator.LT: operator.lt,
    Operator.LE: operator.le,
}


class ToleranceType(enum.StrEnum):
    ABSOLUTE = "absolute"
    RELATIVE = "relative"


@dataclass(frozen=True)
class Tolerance:
    type: ToleranceType = ToleranceType.ABSOLUTE
    value: float = 0.0

    def slack(self, reference: float) -> float:
        if self.type == ToleranceType.RELATIVE:
            return self.value * abs(reference)
        return self.value


EXACT = Tolerance()


@dataclass(frozen=True)
class Verdict:
    """A criterion on one (control, candidate) pair of values."""

    holds: bool
    control: float
    candidate: float
    reference: float
    slack: float


@dataclass(frozen=True)
class Criterion:
    metric: str
    operator: Operator
    tolerance: Tolerance = EXACT
    statistic: Statistic = Statistic.MEAN
    factor: float = 1.0  # reference = control * factor + offset
    offset: float = 0.0

    def reference(self, control: float) -> float:
        """Exact for the gate's forms: ``x * 1.0 + d == x + d``, ``x * f + 0.0 == x * f``."""
        return control * self.factor + self.offset

    def evaluate(self, control: float, candidate: float) -> Verdict:
        reference = self.reference(control)
        slack = self.tolerance.slack(reference)
        return Verdict(
            holds=_holds(self.operator, candidate, reference, slack),
            control=control,
            candidate=candidate,
            reference=reference,
            slack=slack,
        )

    def holds(self, control: float, candidate: float) -> bool:
        return self.evaluate(control, candidate).holds


def _holds(op: Operator, candidate: float, reference: float, slack: float) -> bool:
    """The table of the module's docstring; any NaN makes it false (nothing to compare)."""
    if math.isnan(candidate) or math.isnan(reference) or math.isnan(slack):
        return False
    if op == Operator.EQ:
        return abs(candidate - reference) <= slack
    if op == Operator.NE:
        return abs(candidate - reference) > slack
    if op in (Operator.GT, Operator.GE):
        return _COMPARE[op](candidate, reference - slack)
    return _COMPARE[op](candidate, reference + slack)


# --- metric paths -----------------------------------------------------------------------


def metric_value(facts: RunFacts, path: str) -> float | None:
    """The metric at ``path`` of one run, or None when the run does not report it.

    Paths are dotted, into the model's statistics as Nextmv writes them (``result.value``,
    ``run.duration``, ``result.custom.unplanned``; a leading ``statistics.`` is allowed),
    plus orch's own measurements ``wall_time`` (seconds) and ``peak_memory_mb``, and the
    gate's shorthand ``custom.<name>`` for ``result.custom.<name>``. Booleans, strings and
    non-finite numbers are not metrics. This is the one place a path is resolved, for the
    gate and acceptance tests alike. When the statistics lack it, the run's ``metrics``
    (Nextmv's newer convention) answer, read as ``run_metrics`` files them: ``result.value``
    by its path, a custom metric by its name.
    """
    if path == WALL_TIME:
        return None if facts.duration_ms is None else _number(facts.duration_ms / 1000.0)
    if path == PEAK_MEMORY:
        return _number(facts.peak_memory_mb)
    if path.startswith(CUSTOM_PREFIX):
        path = "result." + path
    path = path.removeprefix("statistics.")
    found = _number(_walk(facts.statistics, path))
    if found is None and facts.metrics:
        found = _number(_walk(facts.metrics, path.removeprefix("result.custom.")))
    return found


def metric_values(runs: Iterable[RunFacts], path: str) -> list[float]:
    """The metric's values over the succeeded ones of ``runs`` that report it."""
    found = (metric_value(r, path) for r in runs if r.status == "succeeded")
    return [v for v in found if v is not None]


def _walk(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
