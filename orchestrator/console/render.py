"""Templates and the headers every console response carries.

Jinja2 with autoescaping on: every value from a user or a model is escaped unless a
function here built it as markup from escaped parts (the JSON highlighter). Pages
are never cached (they show live data) and may only load what the daemon serves:
the Content-Security-Policy says so to the browser, on top of the templates only
ever naming ``/static/...`` URLs.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape

from orchestrator import formatting
from orchestrator.console.assets import ASSET_VERSION
from orchestrator.console.viewers import compact_json, highlight_json, readable_log
from orchestrator.formatting import local_field, local_time

TEMPLATES = Path(__file__).parent / "templates"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
"""Nothing from elsewhere, no inline script. Inline styles stay allowed: Plotly and
htmx set element styles from script."""

HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def when(stamp: str | None) -> str:
    """``2026-12-04T18:40:09.123456Z`` → ``2026-12-04 13:40:09``: the daemon's local time,
    as the CLI shows it (the daemon runs on the user's machine; ``<time datetime>`` keeps
    the stored UTC stamp for machines)."""
    if not stamp:
        return "-"
    try:
        return local_time(stamp)
    except ValueError:  # not a time with a zone: shown as stored
        return stamp[:19].replace("T", " ")


def duration(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes:.0f} min {rest:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours:.0f} h {minutes:.0f} min"


def size(value: float | None) -> str:
    if value is None:
        return "-"
    number = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if number < 1024 or unit == "GiB":
            return f"{number:.0f} {unit}" if unit == "B" else f"{number:.1f} {unit}"
        number /= 1024
    return f"{number:.1f} GiB"  # pragma: no cover - the loop returns at GiB


def mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} MiB"


def signal_name(number: int | None) -> str:
    if number is None:
        return "-"
    try:
        return f"{signal.Signals(number).name} ({number})"
    except ValueError:
        return str(number)


def number(value: Any) -> str:
    """The CLI's digits (``formatting.number``), with thousands separated for the page:
    ``1234567.89`` → ``1,234,567.89``; text a model reported as a statistic stays text."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-" if value is None else str(value)
    return formatting.number(value, grouped=True)


def limits(mapping: dict[str, Any]) -> list[tuple[str, str, str]]:
    """A run's limits as (API field, name in words, value in words), sorted by field:
    ``timeout_seconds`` 3600.0 → ``timeout``, ``1 h`` (the field stays for the badge
    that marks the limit a run was stopped by)."""
    return [(k, limit_name(k), formatting.limit(k, v)) for k, v in sorted(mapping.items())]


def limit_name(field: str) -> str:
    """``timeout_seconds`` → ``timeout``: a limit's API field in words."""
    return formatting.LIMIT_LABELS.get(field, field)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.2f} %"


def _sources(folder: Path) -> dict[str, str]:
    """Every template's text, read once."""
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.html"))}


def _environment() -> Environment:
    """Templates are read from disk once, when the daemon starts (this module is imported
    then), and never again (``auto_reload=False``): a daemon serves the templates of the
    code it started with. Read on each page, a ``git pull`` or an upgrade under a running
    daemon gave new templates to old code, and pages failed (``'refused' is undefined``).
    Reading the ~30 files costs about a millisecond; each is compiled at its first render,
    as before, so the start pays no compiling."""
    env = Environment(
        loader=DictLoader(_sources(TEMPLATES)),
        auto_reload=False,
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=when,
        duration=duration,
        size=size,
        mib=mib,
        signal_name=signal_name,
        number=number,
        limits=limits,
        limit_name=limit_name,
        field_time=local_field,
        percent=percent,
        json=highlight_json,
        compact_json=compact_json,
        readable_log=readable_log,
    )
    env.globals.update(version=ASSET_VERSION, now=lambda: datetime.now(UTC))
    return env


ENV = _environment()


def render(name: str, **context: Any) -> str:
    return ENV.get_template(name).render(**context)


def page(
    request: Request, name: str, status: int = 200, address: str = "", **context: Any
) -> HTMLResponse:
    """A whole page or a partial, with the session's CSRF token and the safety headers.

    ``address``: the page a refused form was on, which this answer to its POST shows
    again. The browser's address bar would stay on the form's action, which is no page
    (a reload sends the form again, or is a 404 or 405); ``console.js`` puts the page's
    address there instead (``history.replaceState``), so a reload opens the page."""
    session = getattr(request.state, "session", None)
    body = render(
        name,
        request=request,
        csrf=session.csrf if session is not None else "",
        signed_in=session is not None,
        path=request.url.path,
        address=address,
        **context,
    )
    return HTMLResponse(body, status_code=status, headers=HEADERS)
