"""Runs side by side: the one table ``orch app run compare`` and the console's compare page show.

Both read the same source, the API's JSON of each run (``GET .../runs/<id>/metadata``: the
CLI over HTTP, the console from ``api.runs.information``, the function that answers it),
so the two can never disagree on which rows there are, what a value is, which rows differ
or how a number is written. Reading an input's bytes stays with each side (a download, a
file on disk); which inputs are read and what their bytes become is decided here.

Pure and light: no I/O, nothing but the standard library (the CLI imports it).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MIN_RUNS, MAX_RUNS = 2, 20
"""How many different runs one comparison takes."""
COMPARED = (
    ("status", "status_v2"),
    ("type", "run_type"),
    ("instance", "application_instance_id"),
    ("version", "application_version_id"),
    ("executable", "executable_id"),
    ("input", "input"),
    ("duration ms", "duration"),
    ("error", "error"),
)
"""Metadata fields compared, as (label, field); metrics and options follow. ``input`` is no
field: it is the input's digest (``input_digest``)."""
HASHED_INPUT_BYTES = 64 * 1024 * 1024
"""Inputs up to this size are read to tell whether two runs had the same one; a bigger
one is told by its size alone (a compare should not read gigabytes)."""
SHOWN_DECIMALS = 3
"""A float's decimals in the table (as the CLI's tables print every float)."""
EXECUTABLE_CHARS = 12
"""Executable IDs are sha256 hex: 12 characters identify one in a table."""

Compared = dict[str, dict[str, Any]]
"""{field: {run id: value}}: what ``--json`` prints."""


@dataclass(frozen=True)
class Row:
    """One field across the runs, in the runs' order: ``values`` as the table shows them
    (a differing row's numbers with the digits that tell them apart, ``distinct``)."""

    field: str
    values: list[Any]
    differ: bool


def enough(run_ids: Sequence[str]) -> bool:
    """Whether ``run_ids`` make a comparison: 2 to 20 runs, none named twice."""
    return MIN_RUNS <= len(set(run_ids)) == len(run_ids) <= MAX_RUNS


def comparison(
    infos: Sequence[Mapping[str, Any]], inputs: Mapping[str, str | None] | None = None
) -> Compared:
    """{field: {run id: value}}: the compared metadata, then ``metric.*``, ``option.*``.
    ``infos``: each run's information (the API's JSON); ``inputs``: each run's input
    digest, by run id."""
    rows: Compared = {}
    for info in infos:
        meta: dict[str, Any] = dict(info["metadata"])
        executable = meta.get("executable_id")
        meta["executable_id"] = executable[:EXECUTABLE_CHARS] if executable else executable
        meta["input"] = (inputs or {}).get(info["id"])
        values = {label: meta.get(key) for label, key in COMPARED}
        values["type"] = (meta.get("run_type") or {}).get("type")
        values |= {f"metric.{k}": v for k, v in (meta.get("metrics") or {}).items()}
        active = (meta.get("options") or {}).get("active_options") or {}
        values |= {f"option.{k}": v for k, v in active.items()}
        for field, value in values.items():
            rows.setdefault(field, {})[info["id"]] = value
    return rows


def table_rows(compared: Compared, run_ids: Sequence[str]) -> list[Row]:
    """The table: one ``Row`` per field, its values in the order of ``run_ids``. A value
    one run lacks (an option only one was given) reads None there: a difference."""
    rows = []
    for field, by_run in compared.items():
        values = [by_run.get(run_id) for run_id in run_ids]
        differ = len({_same(v) for v in values}) > 1
        rows.append(Row(field, distinct(values) if differ else values, differ))
    return rows


def _same(value: Any) -> Any:
    """What two cells must share to be the same: a number's value (a metric reported as 4
    by one run and 4.0 by another is no difference), anything else as it is written."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ("as written", repr(value))
    return "nan" if value != value else value  # NaN equals nothing, itself included


def number_text(value: int | float) -> str:
    """A number as the table writes it: an integer whole, a float to ``SHOWN_DECIMALS``."""
    if isinstance(value, float):
        return f"{value:.{SHOWN_DECIMALS}f}".rstrip("0").rstrip(".")
    return str(value)


def distinct(values: list[Any]) -> list[Any]:
    """The numbers of a row that differs, with as many decimals as it takes for different
    values to look different: ``0.0042`` and ``0.0038`` both read ``0.004`` at the table's 3
    decimals, under a ``*`` that says they differ. The other cells stay as they are."""
    numbers = {v for v in values if isinstance(v, float) and math.isfinite(v)}
    numbers |= {v for v in values if isinstance(v, int) and not isinstance(v, bool)}
    if len({number_text(v) for v in numbers}) >= len(numbers):
        return values  # as the table prints them, they already look different
    texts: dict[Any, str] = {}
    for decimals in range(SHOWN_DECIMALS + 1, 13):
        texts = {v: f"{v:.{decimals}f}".rstrip("0").rstrip(".") for v in numbers}
        if len({*texts.values()}) >= len(numbers):
            break
    else:  # the shortest text that reads back as the same float: different for each
        texts = {v: repr(v) for v in numbers}
    return [texts[v] if v in numbers and not isinstance(v, bool) else v for v in values]


def cell_text(value: Any) -> str:
    """A value of the table as text, as the CLI's table prints it: ``-`` for none."""
    if value is None or value == "":
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return number_text(value)
    return str(value)


def reads_input(meta: Mapping[str, Any]) -> bool:
    """Whether a run's digest needs its input's bytes (``input_digest``): it has an input,
    of at most ``HASHED_INPUT_BYTES``."""
    size = meta.get("input_size")
    return isinstance(size, int) and size <= HASHED_INPUT_BYTES


def input_digest(meta: Mapping[str, Any], data: bytes | None) -> str | None:
    """What tells two runs' inputs apart: the start of a sha256 of the input, of its JSON
    document for a JSON input (the same document sent compact by one client and indented
    by another is the same input), its size alone above ``HASHED_INPUT_BYTES``; None
    when the run has no input to read. ``data``: the input's bytes, as its download gives
    them (a folder as its tar.gz), when ``reads_input``; None when there were none."""
    import hashlib  # only a comparison hashes: the CLI's other commands need not load it

    size = meta.get("input_size")
    if not isinstance(size, int):
        return None
    if size > HASHED_INPUT_BYTES:
        return f"{size:,} bytes (not read)"
    if data is None:
        return None
    if meta["format"]["input"]["type"] == "json":
        with contextlib.suppress(ValueError, RecursionError):  # not JSON: hashed as it is
            doc = json.loads(data)
            data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:12]
