"""Per-target distributions and paired baseline comparisons of an experiment's runs.

Pure computation over ``RunFacts`` (built by the caller from the database), so the CLI,
the API, the CI gate and the HTML report all see the same numbers. Conventions:

- Only succeeded runs contribute metrics. Missing, non-numeric, boolean and non-finite
  values (NaN, inf) are skipped. The statistics come from ``stats``, which computes them
  over the whole float range (a value of ``1.7e308`` included) without overflowing; what
  truly exceeds it (a ``std``, a relative change) goes through ``stats.finite`` and is
  None, so ``Summary.to_dict`` is always strict JSON.
- ``p90`` (and the report's quartiles) interpolate linearly between order statistics,
  numpy's default, so they match what a user computes in a notebook.
- ``std`` is the *sample* standard deviation (n-1 denominator): repetitions are a sample
  of the model's behaviour, not the whole population. It is 0 for a single value.
- Comparisons pair runs by ``(input_id, option_set)`` and average repetitions on each side
  first, so a target with more repetitions does not weigh more. Timing pairs the runs of
  one repetition instead (they were queued side by side: ``queue_order``), and reports the
  geometric mean change with its 95 % interval (``paired``); so does ``value_change`` for
  result.value over the per-input changes. Only a ``significant`` change is a difference.
- An experiment with option sets is summarized per (target, option set), each named
  ``target:option_set`` and compared like a target (``by_option_set``): its sets are what
  the user compares, and a row per target would pool them.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

from orchestrator.errors import Invalid
from orchestrator.experiments.paired import (
    TIMING_WORDS,
    VALUE_WORDS,
    PairedChange,
    called,
    difference_change,
    pair_values,
    ratio_change,
)
from orchestrator.experiments.stats import finite, mean, median, quantile, sample_std

RESULT_VALUE = "result.value"
RUN_DURATION = "run.duration"
WALL_TIME = "wall_time"
CPU_TIME = "cpu_time"
"""CPU seconds of the run's processes, measured by orch: wall time's load-proof twin."""
PEAK_MEMORY = "peak_memory_mb"
BUILTIN_METRICS = (RESULT_VALUE, RUN_DURATION, WALL_TIME, CPU_TIME, PEAK_MEMORY)
CUSTOM_PREFIX = "custom."
TIMING_METRICS = (WALL_TIME, CPU_TIME, RUN_DURATION)
OBJECTIVES = ("min", "max")
TIE_TOLERANCE = 1e-9
CSV_COLUMNS = ("target", "metric", "count", "min", "max", "mean", "median", "p90", "std")
COMPARISON_COLUMNS = (
    "baseline",
    "pairs",
    "wins",
    "losses",
    "ties",
    "mean_change",
    "change_low",
    "change_high",
    "verdict",
)
"""Added to the CSV of an experiment with a baseline: each candidate's row of a compared
metric against the baseline (result.value: wins, losses, ties; a timing metric: its
change only). Columns, not a second section, so the CSV stays one table."""
FAILED_LABEL = "failed (incl. timed out)"
"""How tables head ``TargetSummary.failed``, which counts the timed-out runs too (the JSON
field keeps its name: the SDK reads it)."""

PairKey = tuple[str, str | None]


@dataclass(frozen=True)
class RunFacts:
    """What one finished (or not) run of an experiment contributes to the analysis."""

    run_id: str
    target: str  # the instance id, or "version:<id>" for a bare version
    input_id: str
    input_name: str
    option_set: str | None
    repetition: int  # 0-based
    status: str  # "succeeded" | "failed" | "canceled" | "queued" | "running"
    error: str  # "" when none: the text a person reads
    failure_kind: str | None  # models.FailureKind of a failed run: what the numbers read
    statistics: dict[str, Any] | None  # the model's statistics JSON
    duration_ms: float | None  # wall time measured by orch
    peak_memory_mb: float | None
    metrics: dict[str, Any] | None = None  # the output's top-level metrics (newer convention)
    cpu_seconds: float | None = None  # user + system CPU measured by orch

    @property
    def timed_out(self) -> bool:
        return self.status == "failed" and self.failure_kind == "timeout"

    @property
    def key(self) -> PairKey:
        return (self.input_id, self.option_set)


# --- metric extraction -----------------------------------------------------------------


def run_metrics(facts: RunFacts) -> dict[str, float]:
    """Every metric one run reports, by name: built-ins first, then ``custom.*`` sorted."""
    stats = _as_dict(facts.statistics)
    result = _as_dict(stats.get("result"))
    wall = _number(facts.duration_ms)
    found: dict[str, float | None] = {
        RESULT_VALUE: _number(result.get("value")),
        RUN_DURATION: _number(_as_dict(stats.get("run")).get("duration")),
        WALL_TIME: None if wall is None else wall / 1000.0,
        CPU_TIME: _number(facts.cpu_seconds),
        PEAK_MEMORY: _number(facts.peak_memory_mb),
    }
    found.update(sorted(_flatten(_as_dict(result.get("custom")), CUSTOM_PREFIX)))
    _fall_back_to_metrics(found, _as_dict(facts.metrics))
    return {name: value for name, value in found.items() if value is not None}


def _fall_back_to_metrics(found: dict[str, float | None], metrics: dict[str, Any]) -> None:
    """Fill what ``statistics`` did not give from the run's ``metrics`` (Nextmv's newer
    convention): ``result.value`` and ``run.duration`` by their paths, any other numeric
    metric as ``custom.<path>``, so summaries and gates read both conventions."""
    for name, value in sorted(_flatten(metrics, "")):
        key = name if name in (RESULT_VALUE, RUN_DURATION) else f"{CUSTOM_PREFIX}{name}"
        if found.get(key) is None:
            found[key] = value


def _flatten(data: dict[str, Any], prefix: str) -> Iterator[tuple[str, float]]:
    """Numeric leaves of nested dicts, named with dots (lists and strings are not metrics)."""
    for name, value in data.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{name}.")
        elif (number := _number(value)) is not None:
            yield f"{prefix}{name}", number


def _number(value: Any) -> float | None:
    """A finite float, or None: bools are JSON flags, not measurements."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def metric_order(names: Iterable[str]) -> list[str]:
    """Stable display order: the built-in metrics, then custom ones alphabetically."""
    unique = set(names)
    return [m for m in BUILTIN_METRICS if m in unique] + sorted(unique - set(BUILTIN_METRICS))


def mean_metrics(runs: Iterable[RunFacts]) -> dict[str, float]:
    """Per-metric mean over the succeeded runs among ``runs`` that report the metric."""
    values = _collect(r for r in runs if r.status == "succeeded")
    return {name: mean(v) for name, v in values.items()}


def _collect(runs: Iterable[RunFacts]) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    for run in runs:
        for name, value in run_metrics(run).items():
            values.setdefault(name, []).append(value)
    return {name: values[name] for name in metric_order(values)}


# --- distributions ---------------------------------------------------------------------


@dataclass(frozen=True)
class Distribution:
    """One metric's distribution; ``std`` is None when it exceeds the float range."""

    count: int
    min: float
    max: float
    mean: float
    median: float
    p90: float
    std: float | None

    @classmethod
    def of(cls, values: list[float]) -> Distribution:
        """Summarize a non-empty list; ``std`` is the sample std (n-1), 0 when n == 1.

        Mean, median and p90 lie within ``[min, max]`` and ``stats`` always computes them
        finite; only the spread can exceed the float range (values near ``±1.7e308``).
        """
        return cls(
            count=len(values),
            min=min(values),
            max=max(values),
            mean=mean(values),
            median=median(values),
            p90=quantile(values, 0.9),
            std=finite(sample_std(values)),
        )


@dataclass(frozen=True)
class TargetSummary:
    """Counts by outcome and metric distributions for one instance or version."""

    target: str
    runs: int
    succeeded: int
    failed: int  # includes timed_out: tables head it FAILED_LABEL
    timed_out: int
    canceled: int
    unfinished: int  # queued or running
    metrics: dict[str, Distribution]


def summarize_target(target: str, runs: list[RunFacts]) -> TargetSummary:
    def count(status: str) -> int:
        return sum(1 for r in runs if r.status == status)

    values = _collect(r for r in runs if r.status == "succeeded")
    return TargetSummary(
        target=target,
        runs=len(runs),
        succeeded=count("succeeded"),
        failed=count("failed"),
        timed_out=sum(1 for r in runs if r.timed_out),
        canceled=count("canceled"),
        unfinished=count("queued") + count("running"),
        metrics={name: Distribution.of(v) for name, v in values.items()},
    )


# --- pairing and comparison ------------------------------------------------------------


@dataclass(frozen=True)
class InputPair:
    """One (input, option set) seen by baseline or candidate, with each side's run means.

    A side with no succeeded run has empty means; the gate also looks at the raw runs to
    catch a candidate that failed where the baseline succeeded.
    """

    input_id: str
    input_name: str
    option_set: str | None
    baseline_runs: tuple[RunFacts, ...]
    candidate_runs: tuple[RunFacts, ...]
    baseline: dict[str, float]
    candidate: dict[str, float]

    def values(self, metric: str) -> tuple[float, float] | None:
        """``(baseline, candidate)`` means of ``metric`` when both sides report it."""
        if metric in self.baseline and metric in self.candidate:
            return self.baseline[metric], self.candidate[metric]
        return None


def pair_inputs(facts: list[RunFacts], baseline: str, candidate: str) -> list[InputPair]:
    """Every (input_id, option_set) either target ran, in order of first appearance."""
    names: dict[str, str] = {}
    sides: dict[PairKey, tuple[list[RunFacts], list[RunFacts]]] = {}
    for run in facts:
        if run.target not in (baseline, candidate):
            continue
        names.setdefault(run.input_id, run.input_name)
        base_runs, cand_runs = sides.setdefault(run.key, ([], []))
        (base_runs if run.target == baseline else cand_runs).append(run)
    return [
        InputPair(
            input_id=key[0],
            input_name=names[key[0]],
            option_set=key[1],
            baseline_runs=tuple(base_runs),
            candidate_runs=tuple(cand_runs),
            baseline=mean_metrics(base_runs),
            candidate=mean_metrics(cand_runs),
        )
        for key, (base_runs, cand_runs) in sides.items()
    ]


def relative_change(baseline: float, candidate: float) -> float | None:
    """``(candidate - baseline) / |baseline|``; None when the baseline is 0, or when the
    change exceeds the float range (``1e308`` against ``1e-10``).

    ``candidate - baseline`` itself overflows for ``±1e308``, although the change (-2)
    does not: then the same quotient is taken term by term.
    """
    if baseline == 0:
        return None
    change = (candidate - baseline) / abs(baseline)
    if math.isfinite(change):
        return change
    return finite(candidate / abs(baseline) - math.copysign(1.0, baseline))


def verdict(baseline: float, candidate: float, objective: str) -> str:
    """ "win" when the candidate is better in the objective's sense, "tie" within 1e-9 rel."""
    if math.isclose(candidate, baseline, rel_tol=TIE_TOLERANCE, abs_tol=0.0):
        return "tie"
    better = candidate < baseline if objective == "min" else candidate > baseline
    return "win" if better else "loss"


@dataclass(frozen=True)
class PerInput:
    input_id: str
    input_name: str
    option_set: str | None
    baseline: float
    candidate: float
    relative_change: float | None
    verdict: str  # "win" | "loss" | "tie"


@dataclass(frozen=True)
class Comparison:
    """A candidate against the baseline on ``result.value``, input by input.

    ``unpaired`` counts the (input, option set) keys either side ran that could not be
    compared: one side has no succeeded run reporting ``result.value``.
    """

    target: str
    baseline: str
    metric: str  # always "result.value": the one metric with a better direction
    paired: int
    unpaired: int
    wins: int
    losses: int
    ties: int
    mean_relative_change: float | None
    median_relative_change: float | None
    value_change: PairedChange  # mean_relative_change with its interval and verdict
    timing: dict[str, PairedChange]  # paired by repetition, geometric mean change
    per_input: list[PerInput]


def compare(facts: list[RunFacts], baseline: str, candidate: str, objective: str) -> Comparison:
    pairs = pair_inputs(facts, baseline, candidate)
    per_input = [
        _per_input(p, values, objective)
        for p in pairs
        if (values := p.values(RESULT_VALUE)) is not None
    ]
    changes = [p.relative_change for p in per_input if p.relative_change is not None]
    verdicts = [p.verdict for p in per_input]
    return Comparison(
        target=candidate,
        baseline=baseline,
        metric=RESULT_VALUE,
        paired=len(per_input),
        unpaired=len(pairs) - len(per_input),
        wins=verdicts.count("win"),
        losses=verdicts.count("loss"),
        ties=verdicts.count("tie"),
        mean_relative_change=mean(changes) if changes else None,
        median_relative_change=median(changes) if changes else None,
        value_change=difference_change(changes),
        timing=_timing_changes(facts, baseline, candidate),
        per_input=per_input,
    )


def _per_input(pair: InputPair, values: tuple[float, float], objective: str) -> PerInput:
    base, cand = values
    return PerInput(
        input_id=pair.input_id,
        input_name=pair.input_name,
        option_set=pair.option_set,
        baseline=base,
        candidate=cand,
        relative_change=relative_change(base, cand),
        verdict=verdict(base, cand, objective),
    )


def _timing_changes(
    facts: list[RunFacts], baseline: str, candidate: str
) -> dict[str, PairedChange]:
    """Each timing metric's change, the runs paired by (input, option set, repetition)."""
    observed: dict[str, list[tuple[tuple[str, str | None, int], bool, float]]] = {
        metric: [] for metric in TIMING_METRICS
    }
    for run in facts:
        if run.status != "succeeded" or run.target not in (baseline, candidate):
            continue
        values = run_metrics(run)
        for metric, seen in observed.items():
            if metric in values:
                key = (run.input_id, run.option_set, run.repetition)
                seen.append((key, run.target == candidate, values[metric]))
    return {metric: ratio_change(pair_values(seen)) for metric, seen in observed.items()}


# --- the whole experiment --------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    objective: str
    baseline: str | None
    targets: list[TargetSummary]
    comparisons: list[Comparison]

    def metric_names(self) -> list[str]:
        """Every metric any target reports, in display order."""
        return metric_order(name for t in self.targets for name in t.metrics)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data; keys follow the dataclass field order, so they are stable."""
        return asdict(self)

    def to_csv(self) -> str:
        """One row per (target, metric); ``\\n`` line endings so it diffs well in git. With
        a baseline, the comparison's columns too (``COMPARISON_COLUMNS``), empty on the
        baseline's rows and on metrics not compared."""
        compared = self._comparison_cells()
        blank = [None] * len(COMPARISON_COLUMNS) if compared else []
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([*CSV_COLUMNS, *(COMPARISON_COLUMNS if compared else ())])
        for target in self.targets:
            for name, d in target.metrics.items():
                stats = [d.count, d.min, d.max, d.mean, d.median, d.p90, d.std]
                cells = compared.get((target.target, name), blank)
                writer.writerow([target.target, name, *stats, *cells])
        return buffer.getvalue()

    def _comparison_cells(self) -> dict[tuple[str, str], list[Any]]:
        """``COMPARISON_COLUMNS`` by (candidate, metric), unrounded, worded as the tables."""
        lower_is_good = self.objective == "min"
        cells: dict[tuple[str, str], list[Any]] = {}
        for c in self.comparisons:
            value = c.value_change
            cells[(c.target, c.metric)] = [
                *(c.baseline, c.paired, c.wins, c.losses, c.ties, c.mean_relative_change),
                *(value.low, value.high, called(value, VALUE_WORDS, lower_is_good, c.paired)),
            ]
            for metric, change in c.timing.items():
                if change.pairs:
                    cells[(c.target, metric)] = [
                        *(c.baseline, change.pairs, None, None, None),
                        *(change.mean_relative_change, change.low, change.high),
                        called(change, TIMING_WORDS, True),
                    ]
        return cells


def targets_in_order(facts: Iterable[RunFacts]) -> list[str]:
    return list(dict.fromkeys(f.target for f in facts))


def arm_name(target: str, option_set: str | None) -> str:
    """What a (target, option set) is called in summaries and ``--baseline``: ``prod:fast``;
    the target alone for runs without an option set."""
    return target if option_set is None else f"{target}:{option_set}"


def by_option_set(facts: list[RunFacts], baseline: str | None) -> tuple[list[RunFacts], str | None]:
    """An experiment with option sets compared (target, option set) by (target, option set):
    each run under its ``arm_name`` (option set None, so two sets of one instance pair
    input by input) and the baseline resolved among those names (``arm_baseline``).

    Without option sets, the facts and baseline as they are: the summary stays per target.
    With them, pooling a target's option sets into one row hid what a user runs two sets
    to see, and a baseline instance with no other instance compared nothing at all.
    """
    if all(f.option_set is None for f in facts):
        return facts, baseline
    arms = [(f.target, f.option_set) for f in facts]
    named = [replace(f, target=arm_name(f.target, f.option_set), option_set=None) for f in facts]
    return named, arm_baseline(arms, baseline)


def arm_baseline(arms: Iterable[tuple[str, str | None]], baseline: str | None) -> str | None:
    """The (target, option set) ``baseline`` names: ``TARGET:OPTION_SET``, or a bare target
    that ran one option set only. A target that ran several is ambiguous (``Invalid``,
    with the names to choose from); a name matching nothing is returned as given, for the
    caller's "not one of the targets"."""
    names = dict.fromkeys(arm_name(target, option_set) for target, option_set in arms)
    if not baseline or baseline in names:
        return baseline or None
    its = [arm_name(t, s) for t, s in dict.fromkeys(arms) if t == baseline]
    if len(its) > 1:
        raise Invalid(
            f"baseline {baseline!r} is ambiguous: it ran {len(its)} option sets; name one as "
            f"TARGET:OPTION_SET: {', '.join(its)}"
        )
    return its[0] if its else baseline


def summarize(
    facts: list[RunFacts], baseline: str | None = None, objective: str = "min"
) -> Summary:
    """Distributions per target (first-appearance order) and, with a baseline, how every
    other target compares to it. ``objective`` says which direction of ``result.value``
    is better: "min" (lower wins) or "max". An empty baseline means none, like None."""
    if objective not in OBJECTIVES:
        raise Invalid(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    targets = targets_in_order(facts)
    baseline = baseline or None
    if baseline is not None and baseline not in targets:
        raise Invalid(f"baseline {baseline!r} has no runs in this experiment")
    comparisons = [
        compare(facts, baseline, t, objective)
        for t in targets
        if baseline is not None and t != baseline
    ]
    return Summary(
        objective=objective,
        baseline=baseline,
        targets=[summarize_target(t, [f for f in facts if f.target == t]) for t in targets],
        comparisons=comparisons,
    )
