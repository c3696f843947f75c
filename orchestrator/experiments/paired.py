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
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95
TIMING_NOISE = 0.05
"""Timing changes smaller than this are never called significant (see the module)."""
_NORMAL_BEYOND_DF = 1000
"""Past this many degrees of freedom the t quantile is the normal one to 4 digits."""


@dataclass(frozen=True)
class PairedChange:
    """The mean relative change over paired runs, its 95 % interval and the verdict.

    ``low``/``high`` are None with fewer than 2 pairs (no spread to measure); then the
    change is never significant.
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
    return [
        (statistics.fmean(base), statistics.fmean(cand))
        for base, cand in sides.values()
        if base and cand
    ]


def ratio_change(pairs: Sequence[tuple[float, float]], floor: float = TIMING_NOISE) -> PairedChange:
    """Geometric mean of ``candidate / baseline`` minus 1, with its interval (timing).

    Pairs with a value at or below 0 have no log and are left out.
    """
    logs = [math.log(cand / base) for base, cand in pairs if base > 0 and cand > 0]
    if not logs:
        return PairedChange(0, None, None, None, False)
    mean, low, high = mean_interval(logs)
    if low is None or high is None:
        return PairedChange(len(logs), math.expm1(mean), None, None, False)
    return _change(len(logs), math.expm1(mean), math.expm1(low), math.expm1(high), floor)


def difference_change(changes: Sequence[float], floor: float = 0.0) -> PairedChange:
    """Arithmetic mean of per-pair relative changes, with its interval."""
    if not changes:
        return PairedChange(0, None, None, None, False)
    mean, low, high = mean_interval(changes)
    if low is None or high is None:
        return PairedChange(len(changes), mean, None, None, False)
    return _change(len(changes), mean, low, high, floor)


def _change(n: int, mean: float, low: float, high: float, floor: float) -> PairedChange:
    return PairedChange(n, mean, low, high, low > floor or high < -floor)


def mean_interval(values: Sequence[float]) -> tuple[float, float | None, float | None]:
    """The mean and its two-sided ``CONFIDENCE`` t-interval; no interval for one value."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None, None
    half = t_quantile(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


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
