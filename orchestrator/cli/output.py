"""How the CLI speaks: results on stdout (tables, or the API's JSON with ``--json``),
messages and errors on stderr, a non-zero exit on failure.

Light on purpose: every command imports this module, so it writes plain text itself and
leaves tables to ``render`` (rich), which is imported only when a table is printed.
Tables show times the way people read them: local time, to the second.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NoReturn

import typer

from orchestrator.client import ClientError
from orchestrator.errors import OrchError

Columns = Sequence[tuple[str, str]]
"""(header, key) pairs; keys may be dotted paths into nested objects."""
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)")


def styled(stream: Any) -> bool:
    """Colour and live updates only for a person at a terminal (and never with NO_COLOR)."""
    return bool(stream.isatty()) and not os.environ.get("NO_COLOR")


def say(message: str) -> None:
    """A message for the human (stderr), never mixed into the data on stdout."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def fail(message: str, code: int = 1) -> NoReturn:
    label = "\x1b[1;31merror:\x1b[0m" if styled(sys.stderr) else "error:"
    say(f"{label} {message}")
    raise typer.Exit(code)


@contextmanager
def errors_to_exit() -> Iterator[None]:
    """Turn client and domain errors into a message on stderr and exit code 1."""
    try:
        yield
    except (ClientError, OrchError) as exc:
        fail(exc.message)


def print_json(data: Any) -> None:
    """Indented for a person at a terminal, one compact line for a pipe or a file."""
    if sys.stdout.isatty():
        text = json.dumps(data, indent=2, ensure_ascii=False)
    else:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def emit(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    """The single switch between script output and human output."""
    if as_json:
        print_json(data)
    else:
        human(data)


def table(rows: Sequence[Any], columns: Columns, title: str | None = None) -> None:
    """A table of ``rows`` (dicts) on stdout, one column per (header, key)."""
    from orchestrator.cli import render  # rich: only commands that print a table pay for it

    cells = [[cell(pluck(row, key)) for _, key in columns] for row in rows]
    render.table([header for header, _ in columns], cells, title)


def record(data: Any, fields: Columns) -> None:
    """One object as a two-column table (label, value)."""
    from orchestrator.cli import render  # rich, as in ``table``

    render.record([(label, cell(pluck(data, key))) for label, key in fields])


def pluck(data: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, str) and _TIMESTAMP.fullmatch(value):
        return local_time(value)
    return str(value)


def local_time(stamp: str) -> str:
    """``2026-11-26T18:23:15.756203Z`` → ``2026-11-26 19:23:15`` in the machine's time zone."""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")
