"""Input, output and log viewers: JSON with syntax colouring, arrays of objects as
tables, logs without the terminal's escape sequences.

A payload is only read when it is small enough to show (``PREVIEW_BYTES``); a larger
one is offered through its download link and never loaded into the daemon or the
page. Every piece of text goes through ``html.escape`` before it is wrapped in markup.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from markupsafe import Markup

from orchestrator import standard_json

PREVIEW_BYTES = 1024 * 1024
"""Above this, a payload is a download link only (the page stays fast to load)."""
MAX_TABLE_ROWS = 500
MAX_TABLE_COLUMNS = 30
MAX_TABLES = 6
MAX_CELL = 120

_TERMINAL_ESCAPE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves (ESC [ 1;31 m)
    r"|\][^\x07\x1b\n]*(?:\x07|\x1b\\)?"  # OSC: titles, links, ended by BEL or ST
    r"|[ -/]*[0-~])"  # the short ones (ESC ( B, ESC 7)
)
"""A terminal's escape sequences, which a log viewer in a page shows as garbage."""
_BIDI_CONTROL = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""Invisible marks that reorder the text around them: ``rtl \\u202egnp.exe`` displays as
``rtl exe.png``. A log viewer must show what was written, not what it pretends to be."""


@dataclass
class Table:
    path: str
    columns: list[str]
    rows: list[list[str]]
    total: int


@dataclass
class Preview:
    """What a viewer can show: ``json`` (value), ``text``, or only a link (``large``,
    ``archive``, ``empty``)."""

    kind: str
    size: int = 0
    value: Any = None
    text: str = ""
    tables: list[Table] = field(default_factory=list)


def preview(path: Path | None, size: int, directory: bool = False) -> Preview:
    if directory:
        return Preview("archive", size)
    if path is None or size == 0 or not path.is_file():
        return Preview("empty", size)
    if size > PREVIEW_BYTES:
        return Preview("large", size)
    raw = path.read_bytes()[:PREVIEW_BYTES]
    try:
        value = standard_json.loads(raw)
    except ValueError:
        return Preview("text", size, text=raw.decode(errors="replace"))
    return Preview("json", size, value=value, tables=find_tables(value))


def find_tables(value: Any, path: str = "$", depth: int = 0) -> list[Table]:
    """Arrays of objects anywhere in the first three levels, as tables (at most six)."""
    return list(_tables(value, path, depth))[:MAX_TABLES]


def _tables(value: Any, path: str, depth: int) -> Iterator[Table]:
    if depth > 3:
        return
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        yield _table(path, value)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _tables(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list) and value and isinstance(value[0], dict | list):
        yield from _tables(value[0], f"{path}[0]", depth + 1)


def _table(path: str, items: list[dict[str, Any]]) -> Table:
    columns: list[str] = []
    for item in items[:MAX_TABLE_ROWS]:
        for key in item:
            if key not in columns and len(columns) < MAX_TABLE_COLUMNS:
                columns.append(key)
    rows = [[_cell(item.get(c)) for c in columns] for item in items[:MAX_TABLE_ROWS]]
    return Table(path, columns, rows, len(items))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = _utf8(value) if isinstance(value, str) else compact_json(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def compact_json(value: Any) -> str:
    """A nested value on one line, as written: ``{"city":"Zürich"}``, not ``\\u00fc``."""
    return _dumps(value, separators=(",", ":"))


def _dumps(value: Any, separators: tuple[str, str] | None = None) -> str:
    return _utf8(json.dumps(value, separators=separators, ensure_ascii=False))


def _utf8(text: str) -> str:
    """``text`` as the UTF-8 page can carry it: a lone surrogate (JSON may hold one, UTF-8
    cannot) is shown as its ``\\udXXX`` escape instead of failing the whole page."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def highlight_json(value: Any) -> Markup:
    """Indented JSON with spans for keys, strings, numbers and literals (CSS colours them)."""
    out: list[str] = []
    _emit(value, 0, out)
    return Markup("".join(out))  # built from escaped parts only


def _emit(value: Any, indent: int, out: list[str]) -> None:
    pad = "  " * (indent + 1)
    if isinstance(value, dict) and value:
        out.append("{\n")
        for n, (key, item) in enumerate(value.items()):
            key_text = escape(_dumps(str(key)))
            out.append(f'{pad}<span class="j-key">{key_text}</span>: ')
            _emit(item, indent + 1, out)
            out.append(",\n" if n < len(value) - 1 else "\n")
        out.append("  " * indent + "}")
    elif isinstance(value, list) and value:
        out.append("[\n")
        for n, item in enumerate(value):
            out.append(pad)
            _emit(item, indent + 1, out)
            out.append(",\n" if n < len(value) - 1 else "\n")
        out.append("  " * indent + "]")
    else:
        out.append(_scalar(value))


def _scalar(value: Any) -> str:
    text = escape(_dumps(value))
    if isinstance(value, str):
        return f'<span class="j-str">{text}</span>'
    if isinstance(value, bool) or value is None:
        return f'<span class="j-lit">{text}</span>'
    if isinstance(value, int | float):
        return f'<span class="j-num">{text}</span>'
    return text  # empty {} or []


def readable_log(text: str) -> str:
    """A log as the page shows it: without the terminal's escape sequences (a model's
    coloured output would show ``ESC[31m`` in the page), and with the bidirectional
    controls written out as ``<U+202E>`` (shown as is, they reorder what the reader sees).
    Plain text either way, so the first render and the live stream (which appends text
    nodes) show the same thing. Downloads stay byte-exact."""
    text = _TERMINAL_ESCAPE.sub("", text)
    return _BIDI_CONTROL.sub(lambda m: f"<U+{ord(m.group()):04X}>", text)
