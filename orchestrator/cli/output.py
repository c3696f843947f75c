"""How the CLI speaks: results on stdout (rich tables, or the API's JSON with ``--json``),
messages and errors on stderr, a non-zero exit on failure."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.client import ClientError
from orchestrator.errors import OrchError

out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 240)
"""Piped output is for scripts and logs: wide enough that IDs are never cut."""
err = Console(stderr=True, soft_wrap=True)


def say(message: str) -> None:
    """A message for the human (stderr), never mixed into the data on stdout."""
    err.print(message, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def errors_to_exit() -> Iterator[None]:
    """Turn client and domain errors into a message on stderr and exit code 1."""
    try:
        yield
    except (ClientError, OrchError) as exc:
        fail(exc.message)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def table(
    rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], title: str | None = None
) -> None:
    """A rich table of ``rows``; ``columns`` = (header, key), keys may be dotted paths."""
    t = Table(title=title, show_edge=False, header_style="bold")
    for header, _ in columns:
        t.add_column(header)
    for row in rows:
        t.add_row(*(_cell(pluck(row, key)) for _, key in columns))
    out.print(t)


def record(data: dict[str, Any], fields: Sequence[tuple[str, str]]) -> None:
    """One object as a two-column table."""
    t = Table(show_header=False, show_edge=False, box=None, padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    for label, key in fields:
        t.add_row(label, _cell(pluck(data, key)))
    out.print(t)


def emit(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    """The single switch between script output and human output."""
    if as_json:
        print_json(data)
    else:
        human(data)


def pluck(data: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)
