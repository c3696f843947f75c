"""The statistics a criterion collapses a metric's values with (Nextmv's ``StatisticType``).

One function per name, so the acceptance test, its reported distributions, the experiment
summary and the tests compute each number the same way:

- ``std`` is the *sample* standard deviation (n-1), 0 for a single value, as in the
  experiment summary.
- ``pNN`` interpolates linearly between order statistics (``quantile``, numpy's default),
  so ``p50`` is the median.
- ``shifted_geometric_mean`` is ``exp(mean(ln(v + s))) - s`` with shift ``s = 10``.
  Neither the SDK nor Nextmv's documentation states the platform's shift (the SDK only
  reports it back as ``shift_parameter``); 10 is the customary choice for solve times and
  objective values in solver benchmarking, and it is reported with every distribution.
  Values at or below ``-s`` have no logarithm: ``shift_for`` then raises the shift to
  ``10 - min`` (the SDK reports the shift used with each distribution, so it may vary);
  callers comparing two distributions take one shift for both, so the two stay comparable.

Metric values are any finite floats a model reports, up to ``±1.8e308``, so every
function here works for the whole float range: a mean, a median, a percentile and a
shifted geometric mean lie between the smallest and the largest value, so they are always
finite, even where the textbook formula overflows on the way (``fsum`` of two ``1.7e308``,
``b - a`` of ``±1e308``). The ordinary formula runs first and the careful one only when it
fails, so ordinary inputs keep their exact values. A spread (``std``) or a ratio can
truly exceed the float range; ``finite`` is the one place that turns such a number into
None, which JSON writes as ``null``: summaries pass what may overflow through it.
"""

from __future__ import annotations

import enum
import math
import statistics as pystats
import sys
from collections.abc import Callable, Sequence

SHIFT = 10.0
"""The shift of the shifted geometric mean (see the module's docstring)."""
PERCENTILES = ("p01", "p05", "p10", "p25", "p50", "p75", "p90", "p95", "p99")
_LOG_MAX = math.log(sys.float_info.max)
"""``exp`` of anything above this overflows."""


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
        """This statistic of a non-empty list of finite values (``shift``: see the module).

        Never raises on finite values; only ``std`` can be ``inf`` (a spread beyond the
        float range) and ``shifted_geometric_mean`` ``nan`` (no logarithm): a caller that
        writes JSON passes the value through ``finite``.
        """
        if not values:
            raise ValueError(f"{self.value} of no values")
        if self.value in PERCENTILES:
            return quantile(list(values), int(self.value[1:]) / 100)
        if self == Statistic.SHIFTED_GEOMETRIC_MEAN:
            return shifted_geometric_mean(values, shift)
        return _FUNCTIONS[self](values)


def finite(value: float | None) -> float | None:
    """``value`` when JSON can hold it, else None (written as ``null``).

    The one place a statistic beyond the float range (``inf``) or without a value
    (``nan``) becomes "not representable": strict JSON has neither, and a client's parser
    rejects the whole answer for one such number.
    """
    return value if value is not None and math.isfinite(value) else None


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean of a non-empty list of finite values, always finite.

    ``fmean`` (an exactly rounded sum) when the sum fits in a float, which keeps ordinary
    values bit for bit; past ``1.8e308`` it raises ``OverflowError`` although the mean
    itself fits, so then each value is divided first (``v / 2n`` cannot overflow) and the
    result is kept within ``[min, max]``, where the mean lies.
    """
    try:
        return pystats.fmean(values)
    except OverflowError:
        half = math.fsum(v / (2 * len(values)) for v in values)
        return _within(2 * half, values)


def median(values: Sequence[float]) -> float:
    """``statistics.median``; its ``(a + b) / 2`` overflows for two values near the float
    maximum, and then the overflow-free interpolation of ``quantile`` answers."""
    middle = pystats.median(values)
    return middle if math.isfinite(middle) else quantile(list(values), 0.5)


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default method).

    ``a + (b - a) * f`` as numpy computes it; when ``b - a`` overflows (``-1e308`` and
    ``1e308``: ``inf``, and ``inf * 0`` is ``nan``) the equivalent ``a * (1 - f) + b * f``,
    which cannot overflow, kept within ``[a, b]``.
    """
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    a, b, fraction = ordered[low], ordered[high], position - low
    value = a + (b - a) * fraction
    if math.isfinite(value):
        return value
    return min(max(a * (1 - fraction) + b * fraction, a), b)


def shift_for(values: Sequence[float]) -> float:
    """10, or ``10 - min(values)`` when some value is at or below -10.

    Below about ``-1e17`` the 10 is lost in rounding and ``min + shift`` is 0, which has no
    logarithm; the next float up then keeps every ``v + shift`` positive.
    """
    low = min(values, default=0.0)
    if low > -SHIFT:
        return SHIFT
    shift = SHIFT - low
    if low + shift <= 0:
        raised = math.nextafter(shift, math.inf)
        shift = raised if math.isfinite(raised) else shift
    return shift


def sample_std(values: Sequence[float]) -> float:
    """The sample standard deviation (n-1), 0 for one value; ``inf`` when it exceeds the
    float range (values near ``±1.7e308``), which ``finite`` turns into None."""
    if len(values) < 2:
        return 0.0
    try:
        return pystats.stdev(values)
    except OverflowError:
        return math.inf


def shifted_geometric_mean(values: Sequence[float], shift: float = SHIFT) -> float:
    """``exp(mean(ln(v + shift))) - shift``; ``nan`` when some ``v + shift <= 0``.

    When ``v + shift`` or the ``exp`` overflows (values near the float maximum), the same
    mean of logarithms is taken of the halves ``v/2 + shift/2`` (``ln 2`` less), and the
    result doubled back; it lies within ``[min, max]`` like any mean, so it is kept there.
    """
    if any(v + shift <= 0 for v in values):
        return math.nan
    if all(math.isfinite(v + shift) for v in values):
        log_mean = math.fsum(math.log(v + shift) for v in values) / len(values)
        if log_mean <= _LOG_MAX:
            return math.exp(log_mean) - shift
    half = shift / 2
    halves = [v / 2 + half for v in values]
    if any(h <= 0 for h in halves):  # v + shift was a subnormal: half of it is 0
        return math.nan
    log_mean = math.fsum(math.log(h) for h in halves) / len(values)
    return _within(2 * (math.exp(min(log_mean, _LOG_MAX)) - half), values)


def _within(value: float, values: Sequence[float]) -> float:
    """``value`` clamped to ``[min(values), max(values)]``: a mean computed the careful
    way may round past the extreme value it cannot, mathematically, exceed."""
    return min(max(value, min(values)), max(values))


_FUNCTIONS: dict[Statistic, Callable[[Sequence[float]], float]] = {
    Statistic.MIN: min,
    Statistic.MAX: max,
    Statistic.MEAN: mean,
    Statistic.STD: sample_std,
}
