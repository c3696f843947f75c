"""Paired comparisons with their spread: is a candidate's change real or noise?

Two runs of the same input, option set and repetition are queued next to each other
(``queue_order``), so whatever load the machine had then hit both. Their difference is
one *pair*; the spread of the pairs says how far the mean change can be trusted.

- Timing (wall time, run.duration): the pairs are ``ln(candidate / baseline)``. Their
  mean and its 95 % t-interval, turned back with ``exp(.) - 1``, give the geometric mean
  relative change and its interval. Logs make a run twice as slow and one twice as fast
  cancel out, and a slow input weighs no more than a fast one.
- Other metrics (result.value): the pairs are the per-input relative changes themselves
  (values may be 0 or negative, so no logs), with the same t-interval.

A change is *significant* only when the whole interval lies beyond ``±floor``: for
timing the floor is ``TIMING_NOISE`` (5 %), a minimum-effect test, because a shared
machine moves wall times by a few per cent between two minutes and an interval that
merely excludes 0 would call 1 in 20 identical experiments different. asv does the same
with its default 10 % factor. Deterministic values (result.value) have floor 0.

Pure functions over numbers: no randomness, so the same runs always give the same verdict.
Values may be anywhere in the float range (a model may report ``1.7e308``): means come from
``stats.mean``, which does not overflow, and a change or bound that truly exceeds the
range (a ratio of ``1e308`` to ``1e-10``) is None (``stats.finite``), never ``inf``.

What a change that is not called says is worded here (``not_called``), once for the CLI
and the HTML report.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

from orchestrator.experiments.stats import finite, mean, sample_std

CONFIDENCE = 0.95
TIMING_NOISE = 0.05
"""Timing changes smaller than this are never called significant (see the module)."""
_NORMAL_BEYOND_DF = 1000
"""Past this many degrees of freedom the t quantile is the normal one to 4 digits."""
NO_DIFFERENCE = "no significant difference"
VALUE_WORDS = ("better", "worse")
"""What a significant change of ``result.value`` is called, (good, bad)."""
TIMING_WORDS = ("faster", "slower")
"""What a significant change of a timing metric is called, (good, bad)."""
NOT_COMPARED = "not compared: no input succeeded on both"
NO_RELATIVE_CHANGE = "not compared: no relative change (baseline 0)"


@dataclass(frozen=True)
class PairedChange:
    """The mean relative change over paired runs, its 95 % interval and the verdict.

    ``low``/``high`` are None with fewer than 2 pairs (no spread to measure); then the
    change is never significant. Any of the three is also None when it exceeds the float
    range; ``significant`` is decided on the exact bounds all the same.
    """

    pairs: int
    mean_relative_change: float | None
    low: float | None
    high: float | None
    significant: bool


def pair_values(observations: Iterable[tuple[Hashable, bool, float]]) -> list[tuple[float, float]]:
    """``(baseline, candidate)`` per key that both sides have, in order of first appearance.

    ``observations`` are ``(key, is_candidate, value)``; several values of one side and key
    (explicit runs may repeat a key) are averaged first.
    """
    sides: dict[Hashable, tuple[list[float], list[float]]] = {}
    for key, is_candidate, value in observations:
        sides.setdefault(key, ([], []))[1 if is_candidate else 0].append(value)
    return [(mean(base), mean(cand)) for base, cand in sides.values() if base and cand]


def ratio_change(pairs: Sequence[tuple[float, float]], floor: float = TIMING_NOISE) -> PairedChange:
    """Geometric mean of ``candidate / baseline`` minus 1, with its interval (timing).

    Pairs with a value at or below 0 have no log and are left out.
    """
    logs = [_log_ratio(base, cand) for base, cand in pairs if base > 0 and cand > 0]
    if not logs:
        return PairedChange(0, None, None, None, False)
    center, low, high = mean_interval(logs)
    if low is None or high is None:
        return PairedChange(len(logs), finite(_expm1(center)), None, None, False)
    return _change(len(logs), _expm1(center), _expm1(low), _expm1(high), floor)


def _log_ratio(base: float, cand: float) -> float:
    """``ln(cand / base)``; as ``ln cand - ln base`` when the quotient leaves the float range
    (``1e300 / 1e-10`` is ``inf``, ``1e-300 / 1e100`` is 0), where the logs still fit."""
    ratio = cand / base
    if 0 < ratio < math.inf:
        return math.log(ratio)
    return math.log(cand) - math.log(base)


def _expm1(x: float) -> float:
    """``exp(x) - 1``, ``inf`` past the float range instead of ``OverflowError``."""
    try:
        return math.expm1(x)
    except OverflowError:
        return math.inf


def difference_change(changes: Sequence[float], floor: float = 0.0) -> PairedChange:
    """Arithmetic mean of per-pair relative changes, with its interval."""
    if not changes:
        return PairedChange(0, None, None, None, False)
    center, low, high = mean_interval(changes)
    if low is None or high is None:
        return PairedChange(len(changes), finite(center), None, None, False)
    return _change(len(changes), center, low, high, floor)


def _change(n: int, center: float, low: float, high: float, floor: float) -> PairedChange:
    """Significance on the exact bounds (an infinite one included); then what JSON can
    hold of the three numbers."""
    significant = low > floor or high < -floor
    return PairedChange(n, finite(center), finite(low), finite(high), significant)


def mean_interval(values: Sequence[float]) -> tuple[float, float | None, float | None]:
    """The mean and its two-sided ``CONFIDENCE`` t-interval; no interval for one value.

    The bounds are ``±inf`` when the spread exceeds the float range.
    """
    center = mean(values)
    if len(values) < 2:
        return center, None, None
    half = t_quantile(len(values) - 1) * sample_std(values) / math.sqrt(len(values))
    return center, center - half, center + half


def not_called(pairs: int, paired_inputs: int | None = None) -> str:
    """What a change that is not significant says, instead of better or worse.

    With no pairs nothing was compared, which "no significant difference" would hide: a
    candidate that failed on every input has 0 pairs (``NOT_COMPARED``). ``paired_inputs``
    (result.value: inputs with a value on both sides) tells that case from inputs that
    were paired but have no relative change, their baseline being 0.
    """
    if pairs:
        return NO_DIFFERENCE
    return NO_RELATIVE_CHANGE if paired_inputs else NOT_COMPARED


def called(
    change: PairedChange,
    words: tuple[str, str],
    lower_is_good: bool,
    paired_inputs: int | None = None,
) -> str:
    """``words`` = (good, bad) for a significant change, by its direction; else why it was
    not called (``not_called``). The one wording of a verdict: the tables, the CSV."""
    if not change.significant:
        return not_called(change.pairs, paired_inputs)
    good, bad = words
    # None: a change past the float range, which only an increase can be (a decrease
    # stops at -100 %)
    increase = change.mean_relative_change is None or change.mean_relative_change > 0
    return bad if increase == lower_is_good else good


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """``t`` with ``P(|T| <= t) = confidence`` for Student's t with ``df`` degrees of freedom.

    Bisection on the exact finite-series CDF of integer ``df`` (Abramowitz & Stegun
    26.7.3-4), so no numerical library is needed; the normal quantile past 1000 df.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    if df > _NORMAL_BEYOND_DF:
        return statistics.NormalDist().inv_cdf((1 + confidence) / 2)
    low, high = 0.0, 1.0
    while _central_t(high, df) < confidence:
        high *= 2
    for _ in range(80):
        mid = (low + high) / 2
        low, high = (mid, high) if _central_t(mid, df) < confidence else (low, mid)
    return (low + high) / 2


def _central_t(t: float, df: int) -> float:
    """``P(|T| <= t)``: A(t|df) of Abramowitz & Stegun 26.7.3 (odd df) and 26.7.4 (even)."""
    theta = math.atan(t / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    if df % 2 == 0:
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= cos2 * (2 * k - 1) / (2 * k)
            total += term
        return math.sin(theta) * total
    if df == 1:
        return 2 * theta / math.pi
    term, total = 1.0, 1.0
    for k in range(1, (df - 1) // 2):
        term *= cos2 * (2 * k) / (2 * k + 1)
        total += term
    return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
