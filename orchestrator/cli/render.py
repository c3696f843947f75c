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
    out.print(build(headers, rows, title, whole, out.width))


def build(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    title: str | None,
    whole: Collection[int] = (),
    width: int | None = None,
) -> Table:
    t = Table(title=title, show_edge=False, header_style="bold")
    shown = _shown(headers, rows, whole, width)
    for n in shown:
        if n in whole:
            widest = max((cell_len(row[n]) for row in rows), default=0)
            t.add_column(headers[n], no_wrap=True, min_width=max(widest, cell_len(headers[n])))
        else:
            t.add_column(headers[n])
    for row in rows:
        t.add_row(*(Text(row[n]) for n in shown))  # Text: never read as rich markup
    return t


def _shown(
    headers: Sequence[str], rows: Sequence[Sequence[str]], whole: Collection[int], width: int | None
) -> list[int]:
    """Every column, unless the table is wider than ``width``: then the columns with nothing
    in them ("-" in every row) are left out. They tell nothing, and at 80 columns the run
    list cut every other cell to "succe…" and "devi…" to make room for three of them."""
    columns = range(len(headers))
    natural = sum(max([cell_len(headers[n]), *(cell_len(r[n]) for r in rows)]) + 3 for n in columns)
    if width is None or natural <= width:
        return list(columns)
    return [n for n in columns if n in whole or any(row[n] not in ("", "-") for row in rows)]


def record(pairs: Sequence[tuple[str, str]]) -> None:
    t = Table(show_header=False, show_edge=False, box=None, padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    for label, value in pairs:
        t.add_row(label, Text(value))
    out.print(t)
