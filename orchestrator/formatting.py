"""How numbers, limits and times read to a person: one module for the CLI and the console.

The console is served by the daemon on the user's own machine, next to the CLI: the same
run's value, limit or creation time must read the same in both, or the user wonders which
one is right. So both print through these functions, never a format of their own. Times
are shown in the machine's local time zone (the CLI's and the daemon's, which is the same
machine), to the second; stored and machine-readable times stay UTC ISO 8601.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

EXPONENT_FROM = 1e15
"""From here on, exponent notation: 1.7e308 written out is 309 digits."""

LIMIT_LABELS = {
    "memory_mb": "memory",
    "cpu_seconds": "CPU time",
    "timeout_seconds": "timeout",
    "output_mb": "output",
    "open_files": "open files",
    "processes": "processes",
    "disk_mb": "disk",
    "retries": "retries",
}
"""A limit's API field → its name in words (``Limits`` has these fields)."""
_MIB_LIMITS = ("memory_mb", "output_mb", "disk_mb")
_SECONDS_LIMITS = ("cpu_seconds", "timeout_seconds")


def number(value: Any, grouped: bool = False) -> str:
    """Integers stay whole (objective values are often counts); others get 4 significant
    digits past the point, so 0.00012 s does not print as 0; from 1e15 on, exponent
    notation. ``grouped``: thousands separated by commas (``1,234,567.89``), for a page;
    the CLI's tables stay without, as scripts that read them expect."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    comma = "," if grouped else ""
    if math.isfinite(value) and float(value).is_integer() and abs(value) < EXPONENT_FROM:
        return format(int(value), comma)
    if abs(value) >= EXPONENT_FROM:
        return f"{value:.4g}"
    if abs(value) >= 1:
        return format(value, f"{comma}.3f").rstrip("0").rstrip(".")
    return f"{value:.4g}"


def mebibytes(mib: float) -> str:
    """``10240`` → ``10 GiB``, ``256`` → ``256 MiB``: a size given in MiB, as limits are."""
    if mib >= 1024:
        return f"{number(mib / 1024)} GiB"
    return f"{number(mib)} MiB"


def seconds(value: float) -> str:
    """``3600`` → ``1 h``, ``5400`` → ``1 h 30 min``, ``1.5`` → ``1.5 s``: a span in the
    largest units that say it exactly, leaving out the parts that are zero."""
    if value < 60:
        return f"{number(value)} s"
    minutes, rest = divmod(value, 60)
    hours, minutes = divmod(int(minutes), 60)
    parts = [(hours, "h"), (minutes, "min")]
    words = [f"{amount} {unit}" for amount, unit in parts if amount]
    if rest:
        words.append(f"{number(rest)} s")
    return " ".join(words)


def limit(name: str, value: Any) -> str:
    """One limit's value in words: ``timeout_seconds`` 3600.0 → ``1 h``, ``disk_mb`` 10240
    → ``10 GiB``; counts (open files, retries) as numbers."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if name in _MIB_LIMITS:
            return mebibytes(value)
        if name in _SECONDS_LIMITS:
            return seconds(value)
    return number(value) if isinstance(value, int | float) else str(value)


def limits(mapping: dict[str, Any] | None) -> list[tuple[str, str]]:
    """``{"timeout_seconds": 3600.0}`` → ``[("timeout", "1 h")]``, in the order given."""
    return [(LIMIT_LABELS.get(k, k), limit(k, v)) for k, v in (mapping or {}).items()]


def moment(stamp: str) -> datetime:
    """An ISO 8601 time with a zone (``Z`` or an offset) as an aware datetime."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def local_time(stamp: str) -> str:
    """``2026-11-26T18:23:15.756203Z`` → ``2026-11-26 19:23:15`` in the machine's time zone."""
    return moment(stamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def local_field(text: str) -> str:
    """A time filter as a ``datetime-local`` field shows it: in the machine's time zone, no
    zone written. A time with a zone (a shared link's ``...Z``) is turned into local time;
    one without is local already. Text that is no time is given back as it is."""
    try:
        parsed = moment(text)
    except ValueError:
        return text
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone().replace(tzinfo=None)
    shape = "%Y-%m-%dT%H:%M" if not (parsed.second or parsed.microsecond) else "%Y-%m-%dT%H:%M:%S"
    return parsed.strftime(shape)


def in_local_zone(text: str | None) -> str | None:
    """A time typed without a zone (a ``datetime-local`` field) read as the machine's local
    time, written with its offset; a time with a zone, or text that is no time, is given
    back as it is (its parser says what is wrong with it)."""
    if not text or not text.strip():
        return text
    try:
        parsed = moment(text.strip())
    except ValueError:
        return text
    if parsed.tzinfo is not None:
        return text
    return parsed.astimezone().astimezone(UTC).isoformat()
