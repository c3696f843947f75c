"""The CI gate (``--fail-if``): fail when a candidate regresses against the baseline.

Syntax::

    METRIC OP baseline [* FACTOR | + DELTA | - DELTA] [or METRIC OP baseline ...]

- ``METRIC``: a metric of the experiment summary: ``result.value``, ``run.duration``
  (seconds, as the model reports it), ``wall_time`` (seconds, measured by orch),
  ``peak_memory_mb`` or ``custom.<name>`` (nested custom fields joined with dots).
- ``OP``: one of ``>``, ``>=``, ``<``, ``<=``, ``==``, ``!=``.
- ``FACTOR`` / ``DELTA``: a plain non-negative number such as ``1.01``, ``0.5`` or ``2e-3``.
- Several conditions may be joined with `` or ``; any true condition fails the gate.

Examples::

    result.value > baseline * 1.01        # over 1 % worse on a minimization
    wall_time > baseline + 0.5            # more than half a second slower
    custom.items_selected < baseline      # fewer items on a maximization
    result.value > baseline or peak_memory_mb > baseline * 1.5

A condition reads "fail if the candidate's METRIC OP the threshold", where the threshold
is computed from the baseline's value. It is checked per input pair, i.e. per
``(input_id, option_set)``, on the mean over repetitions of each side's succeeded runs,
for every target other than the baseline; pairs where a side lacks the metric are skipped
for that condition. Independently of the expression, a candidate run that failed on an
input where the baseline succeeded is a violation (metric ``status``): a crash or a timeout
is never an improvement. Comparisons are exact (no tolerance): use a factor or a delta to
allow noise. The expression is parsed with a regular expression, never evaluated as code.

Each condition is a ``criteria.Criterion`` (the same engine as acceptance tests): the
operator, no tolerance, the arithmetic as the criterion's factor or offset, the statistic
``mean`` (over a pair's repetitions), and the values read by ``criteria.metric_value``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import Invalid
from orchestrator.experiments.criteria import Criterion, Operator, metric_values
from orchestrator.experiments.summary import (
    BUILTIN_METRICS,
    CUSTOM_PREFIX,
    InputPair,
    RunFacts,
    pair_inputs,
    targets_in_order,
)

SYNTAX = (
    "expected: METRIC OP baseline [* FACTOR | + DELTA | - DELTA], conditions joined with"
    " ' or ', e.g. 'result.value > baseline * 1.01'; METRIC is result.value, run.duration,"
    " wall_time, cpu_time, peak_memory_mb or custom.<name>; OP is one of > >= < <= == !="
)

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_CONDITION = re.compile(
    r"\s*(?P<metric>[A-Za-z_][\w.\-]*)\s*(?P<op>>=|<=|==|!=|>|<)\s*baseline"
    rf"\s*(?:(?P<arith>[*+\-])\s*(?P<operand>{_NUMBER}))?\s*"
)
_OR = re.compile(r"\s+or\s+")
MAX_LISTED = 50  # violations spelled out by describe(); a CI log stays readable


@dataclass(frozen=True)
class Condition:
    """One ``METRIC OP baseline [arith operand]`` clause."""

    metric: str
    op: str
    arith: str | None = None  # "*", "+", "-" or None
    operand: float = 0.0

    @property
    def criterion(self) -> Criterion:
        """This clause in the shared engine: exact comparison against the moved baseline."""
        return Criterion(
            metric=self.metric,
            operator=Operator.from_symbol(self.op),
            factor=self.operand if self.arith == "*" else 1.0,
            offset={"+": self.operand, "-": -self.operand}.get(self.arith or "", 0.0),
        )

    def threshold(self, baseline: float) -> float:
        return self.criterion.reference(baseline)

    def violated(self, candidate: float, baseline: float) -> bool:
        return self.criterion.holds(baseline, candidate)

    def __str__(self) -> str:
        tail = "" if self.arith is None else f" {self.arith} {self.operand:g}"
        return f"{self.metric} {self.op} baseline{tail}"


def parse(expr: str) -> list[Condition]:
    """The conditions of a ``--fail-if`` expression; ``Invalid`` (with the syntax) if malformed."""
    if not expr.strip():
        raise _malformed(expr, "it is empty")
    return [_parse_condition(expr, part) for part in _OR.split(expr.strip())]


def _parse_condition(expr: str, text: str) -> Condition:
    match = _CONDITION.fullmatch(text)
    if match is None:
        raise _malformed(expr, f"cannot read {text.strip()!r}")
    metric = match["metric"]
    if metric not in BUILTIN_METRICS and not (
        metric.startswith(CUSTOM_PREFIX) and len(metric) > len(CUSTOM_PREFIX)
    ):
        raise _malformed(expr, f"unknown metric {metric!r}")
    operand = float(match["operand"]) if match["operand"] is not None else 0.0
    if not math.isfinite(operand):  # 1e999 parses, as infinity
        raise _malformed(expr, f"{match['operand']} is not a finite number")
    return Condition(metric=metric, op=match["op"], arith=match["arith"], operand=operand)


def _malformed(expr: str, why: str) -> Invalid:
    return Invalid(f"malformed condition {expr!r}: {why}; {SYNTAX}")  # the caller names its field


@dataclass(frozen=True)
class GateResult:
    """What the gate saw; ``failed`` when any violation was found."""

    expression: str
    baseline: str
    checked: int  # input pairs on which at least one check applied
    violations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.violations)

    def to_dict(self) -> dict[str, Any]:
        return {
            "expression": self.expression,
            "baseline": self.baseline,
            "failed": self.failed,
            "checked": self.checked,
            "violations": self.violations,
        }

    def describe(self) -> str:
        """A human explanation for the CI log: the verdict, then one line per violation
        (the first ``MAX_LISTED``; ``violations`` keeps them all)."""
        if not self.failed:
            hint = "" if self.checked else " (no input succeeded on both baseline and candidate)"
            return f"gate passed: {self.checked} pairs checked{hint}"
        pairs = {(v["target"], v["input_id"], v["option_set"]) for v in self.violations}
        lines = [
            f"gate failed: {len(self.violations)} violation(s) on {len(pairs)} of "
            f"{self.checked} pairs checked against baseline {self.baseline!r}",
            f"  condition: {self.expression}",
        ]
        lines += [f"  - {_describe_violation(v)}" for v in self.violations[:MAX_LISTED]]
        if len(self.violations) > MAX_LISTED:
            lines.append(f"  ... and {len(self.violations) - MAX_LISTED} more")
        return "\n".join(lines)


def _describe_violation(v: dict[str, Any]) -> str:
    where = f"{v['target']} on input {v['input_name']!r} ({v['input_id']})"
    if v["option_set"] is not None:
        where += f" with options {v['option_set']!r}"
    if v["metric"] == "status":
        return f"{where}: run failed where the baseline succeeded: {v['reason']}"
    return (
        f"{where}: {v['metric']} {v['candidate']:.6g} vs baseline {v['baseline']:.6g}"
        f" (threshold {v['threshold']:.6g}, {v['reason']})"
    )


def evaluate(expr: str, facts: list[RunFacts], baseline: str) -> GateResult:
    """Check every non-baseline target against ``baseline``, input pair by input pair."""
    conditions = parse(expr)
    targets = targets_in_order(facts)
    if baseline not in targets:
        raise Invalid(f"baseline {baseline!r} has no runs in this experiment")
    succeeded = [f for f in facts if f.status == "succeeded"]
    for condition in conditions:
        metric = condition.criterion.metric
        if succeeded and not metric_values(succeeded, metric):  # it would pass, unchecked
            raise Invalid(
                f"no succeeded run reports {metric!r}: the gate cannot check it "
                "(a misspelled metric?)"
            )
    checked = 0
    violations: list[dict[str, Any]] = []
    for target in targets:
        if target == baseline:
            continue
        for pair in pair_inputs(facts, baseline, target):
            applied, found = _check_pair(target, pair, conditions)
            checked += applied
            violations += found
    return GateResult(expression=expr, baseline=baseline, checked=checked, violations=violations)


def _check_pair(
    target: str, pair: InputPair, conditions: list[Condition]
) -> tuple[bool, list[dict[str, Any]]]:
    """Whether any check applied to this pair, and the violations it found."""
    if not any(r.status == "succeeded" for r in pair.baseline_runs):
        return False, []
    applied = False
    found: list[dict[str, Any]] = []
    failed = [r for r in pair.candidate_runs if r.status == "failed"]
    if failed:
        applied = True
        found.append(
            _violation(
                target, pair, "status", "failed", "succeeded", None, failed[0].error or "failed"
            )
        )
    for condition in conditions:
        criterion = condition.criterion
        base_values = metric_values(pair.baseline_runs, criterion.metric)
        cand_values = metric_values(pair.candidate_runs, criterion.metric)
        if not base_values or not cand_values:
            continue
        applied = True
        base, cand = criterion.statistic.of(base_values), criterion.statistic.of(cand_values)
        verdict = criterion.evaluate(base, cand)
        if verdict.holds:
            found.append(
                _violation(
                    target, pair, condition.metric, cand, base, verdict.reference, str(condition)
                )
            )
    return applied, found


def _violation(
    target: str,
    pair: InputPair,
    metric: str,
    candidate: float | str,
    baseline: float | str,
    threshold: float | None,
    reason: str,
) -> dict[str, Any]:
    return {
        "target": target,
        "input_id": pair.input_id,
        "input_name": pair.input_name,
        "option_set": pair.option_set,
        "metric": metric,
        "candidate": candidate,
        "baseline": baseline,
        "threshold": threshold,
        "reason": reason,
    }
