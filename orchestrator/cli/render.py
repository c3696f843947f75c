"""Tables with rich: imported only by the commands that print one (see ``output``)."""

from __future__ import annotations

import sys
from collections.abc import Collection, Sequence

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 240)
"""Piped output is for scripts and logs: wide enough that IDs are never cut."""
err = Console(stderr=True, soft_wrap=True)


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    title: str | None,
    whole: Collection[int] = (),
) -> None:
    """``whole``: the columns (IDs) never wrapped nor cut, whatever the terminal's width;
    the other columns wrap or shrink to make room."""
    out.print(build(headers, rows, title, whole))


def build(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    title: str | None,
    whole: Collection[int] = (),
) -> Table:
    t = Table(title=title, show_edge=False, header_style="bold")
    for n, header in enumerate(headers):
        if n in whole:
            widest = max((cell_len(row[n]) for row in rows), default=0)
            t.add_column(header, no_wrap=True, min_width=max(widest, cell_len(header)))
        else:
            t.add_column(header)
    for row in rows:
        t.add_row(*(Text(c) for c in row))  # Text: a value is never read as rich markup
    return t


def record(pairs: Sequence[tuple[str, str]]) -> None:
    t = Table(show_header=False, show_edge=False, box=None, padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    for label, value in pairs:
        t.add_row(label, Text(value))
    out.print(t)
