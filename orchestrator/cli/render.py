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
    the other columns wrap or shrink to make room, and those that find none are left
    out, which a line on stderr says."""
    shown = _shown(headers, rows, whole, out.width)
    _print(build(headers, rows, title, whole, out.width, shown))
    hidden = [h for n, h in enumerate(headers) if n not in shown and _filled(rows, n)]
    if hidden:
        err.print(
            f"(too narrow to show {', '.join(hidden)}: widen the terminal, or add --json)",
            style="dim",
            markup=False,
            highlight=False,
        )


def build(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    title: str | None,
    whole: Collection[int] = (),
    width: int | None = None,
    shown: Sequence[int] | None = None,
) -> Table:
    """``shown``: the columns kept (``_shown``), when the caller worked them out already."""
    t = Table(title=title, show_edge=False, header_style="bold")
    shown = _shown(headers, rows, whole, width) if shown is None else shown
    for n in shown:
        if n in whole:
            widest = max((cell_len(row[n]) for row in rows), default=0)
            t.add_column(headers[n], no_wrap=True, min_width=max(widest, cell_len(headers[n])))
        else:
            t.add_column(headers[n])
    for row in rows:
        t.add_row(*(Text(row[n]) for n in shown))  # Text: never read as rich markup
    return t


MIN_CELL = 4
"""The narrowest a cut column is worth showing: three characters and "…" ("suc…")."""
RULE = 3
"""What a column adds to a table's width besides its cells: a space each side, a rule."""


def _filled(rows: Sequence[Sequence[str]], n: int) -> bool:
    return any(row[n] not in ("", "-") for row in rows)


def _shown(
    headers: Sequence[str], rows: Sequence[Sequence[str]], whole: Collection[int], width: int | None
) -> list[int]:
    """Every column, unless the table is wider than ``width``: then the columns with nothing
    in them ("-" in every row) are left out. They tell nothing, and at 80 columns the run
    list cut every other cell to "succe…" and "devi…" to make room for three of them.

    If the rest is still too wide for every column to keep ``MIN_CELL`` characters, the
    ``whole`` ones (IDs) stay and each other one is kept, from the left, if it still fits:
    at 20 columns the run list showed its IDs and four columns of width 0, a rule each."""
    columns = range(len(headers))
    natural = [max([cell_len(headers[n]), *(cell_len(r[n]) for r in rows)]) for n in columns]
    if width is None or sum(natural) + RULE * len(natural) <= width:
        return list(columns)
    kept = [n for n in columns if n in whole or _filled(rows, n)]
    room = width - sum(natural[n] + RULE for n in kept if n in whole)
    shown: list[int] = []
    for n in kept:
        if n not in whole:
            need = min(natural[n], MIN_CELL) + RULE
            if need > room:
                continue
            room -= need
        shown.append(n)
    return shown


def record(pairs: Sequence[tuple[str, str]]) -> None:
    t = Table(show_header=False, show_edge=False, box=None, padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    for label, value in pairs:
        t.add_row(label, Text(value))
    _print(t)


def _print(renderable: Table) -> None:
    """At a terminal as rich draws it; into a pipe without the spaces that pad each line to
    the table's width (a record's short lines ended in ~150 of them)."""
    if out.is_terminal:
        out.print(renderable)
        return
    with out.capture() as captured:
        out.print(renderable)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
