"""Print the CLI reference (every ``orch`` command with its one-line help) as Markdown.

The README embeds this output between the ``cli-reference`` markers, and
tests/test_docs.py fails when the two differ, so the reference cannot drift
from ``--help``. Regenerate with::

    .venv/bin/python scripts/cli_reference.py --write
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from orchestrator.cli.main import cli

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- cli-reference:begin -->", "<!-- cli-reference:end -->"


def commands(group: Any, path: str = "orch") -> Iterator[tuple[str, str]]:
    """(command path, first paragraph of its help), depth first, in declaration order."""
    if hasattr(group, "commands"):  # a group (typer vendors its own click)
        if group.invoke_without_command:
            yield path, _first_line(group)
        for name, sub in group.commands.items():
            if not sub.hidden:
                yield from commands(sub, f"{path} {name}")
    else:
        yield path, _first_line(group)


def _first_line(command: Any) -> str:
    """The help's first paragraph, on one line: a docstring wraps its first sentence."""
    text = (command.help or command.short_help or "").strip()
    return " ".join(text.split("\n\n")[0].split())


def reference() -> str:
    root = typer.main.get_command(cli)
    lines = ["| command | what it does |", "| --- | --- |"]
    lines += [f"| `{path}` | {text} |" for path, text in commands(root) if path != "orch"]
    return "\n".join(lines) + "\n"


def embedded(text: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip("\n") + "\n"


def main() -> None:
    table = reference()
    if "--write" in sys.argv:
        text = README.read_text()
        start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
        README.write_text(text[:start] + "\n" + table + text[end:])
    else:
        sys.stdout.write(table)


if __name__ == "__main__":
    main()
