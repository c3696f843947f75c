"""The statistics a criterion collapses a metric's values with (Nextmv's ``StatisticType``).

One function per name, so the acceptance test, its reported distributions and the tests
compute each number the same way:

- ``std`` is the *sample* standard deviation (n-1), 0 for a single value, as in the
  experiment summary.
- ``pNN`` interpolates linearly between order statistics (``summary.quantile``, numpy's
  default), so ``p50`` is the median.
- ``shifted_geometric_mean`` is ``exp(mean(ln(v + s))) - s`` with shift ``s = 10``.
  Neither the SDK nor Nextmv's documentation states the platform's shift (the SDK only
  reports it back as ``shift_parameter``); 10 is the customary choice for solve times and
  objective values in solver benchmarking, and it is reported with every distribution.
  Values at or below ``-s`` have no logarithm: ``shift_for`` then raises the shift to
  ``10 - min`` (the SDK reports the shift used with each distribution, so it may vary);
  callers comparing two distributions take one shift for both, so the two stay comparable.
"""

from __future__ import annotations

import enum
import math
import statistics as pystats
from collections.abc import Callable, Sequence

from orchestrator.experiments.summary import quantile

SHIFT = 10.0
"""The shift of the shifted geometric mean (see the module's docstring)."""
PERCENTILES = ("p01", "p05", "p10", "p25", "p50", "p75", "p90", "p95", "p99")


class Statistic(enum.StrEnum):
    MIN = "min"
    MAX = "max"
    MEAN = "mean"
    STD = "std"
    SHIFTED_GEOMETRIC_MEAN = "shifted_geometric_mean"
    P01 = "p01"
    P05 = "p05"
    P10 = "p10"
    P25 = "p25"
    P50 = "p50"
    P75 = "p75"
    P90 = "p90"
    P95 = "p95"
    P99 = "p99"

    def of(self, values: Sequence[float], shift: float = SHIFT) -> float:
        """This statistic of a non-empty list of finite values (``shift``: see the module)."""
        if not values:
            raise ValueError(f"{self.value} of no values")
        if self.value in PERCENTILES:
            return quantile(list(values), int(self.value[1:]) / 100)
        if self == Statistic.SHIFTED_GEOMETRIC_MEAN:
            return shifted_geometric_mean(values, shift)
        return _FUNCTIONS[self](values)


def shift_for(values: Sequence[float]) -> float:
    """10, or ``10 - min(values)`` when some value is at or below -10."""
    low = min(values, default=0.0)
    return SHIFT if low > -SHIFT else SHIFT - low


def sample_std(values: Sequence[float]) -> float:
    return pystats.stdev(values) if len(values) > 1 else 0.0


def shifted_geometric_mean(values: Sequence[float], shift: float = SHIFT) -> float:
    """``exp(mean(ln(v + shift))) - shift``; ``nan`` when some ``v + shift <= 0``."""
    if any(v + shift <= 0 for v in values):
        return math.nan
    return math.exp(math.fsum(math.log(v + shift) for v in values) / len(values)) - shift


_FUNCTIONS: dict[Statistic, Callable[[Sequence[float]], float]] = {
    Statistic.MIN: min,
    Statistic.MAX: max,
    Statistic.MEAN: pystats.fmean,
    Statistic.STD: sample_std,
}
