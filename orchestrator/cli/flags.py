"""Flags shared by several commands: run options and limits, instance IDs, old spellings.

Instances and runs take the same flags; parsing them in one place keeps the
commands from drifting apart. A short flag means one thing in every command
(``-i`` is the input, as in the nextmv CLI); spellings that meant something
else still work for now, with a note on stderr saying what to type instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import typer
from typer._click.core import Parameter

from orchestrator.cli.context import an_id
from orchestrator.cli.output import fail, say
from orchestrator.client import ClientError

MAX_MB = 2**24
"""The largest ``--memory-mb``, ``--output-mb`` and ``--disk-mb`` (16 TiB) and the largest
``--cpu-seconds`` and ``--timeout``: the daemon's caps (``models.MAX_LIMITS``, which this
hot path does not import: ~16 ms), checked here too so that the error names the flag
typed and the cap as a whole number, not the API's field and ``1.67772e+07``."""
MAX_SECONDS = 10**9


def flag_of(param: Parameter) -> str:
    """The flag an error names: the long spelling, which says what it is (of a callback's
    parameter, or of one found in a command's ``params``)."""
    return max(param.opts, key=len) if param.opts else param.name or "?"


def bad_value(param: typer.CallbackParam, message: str) -> typer.BadParameter:
    """A usage error about ``param``'s value: ``invalid value for '--flag': message``, exit 2,
    with the command's help named (``usage``), as click's own range checks say it."""
    return typer.BadParameter(message, param_hint=f"'{flag_of(param)}'")


def finite(ctx: typer.Context, param: typer.CallbackParam, value: float | None) -> float | None:
    """Callback of the number flags: ``nan`` passes every range check (it compares false
    with both ends) and reached the daemon, whose error named an API field, not the flag."""
    if value is not None and not math.isfinite(value):
        raise bad_value(param, f"{value} is not a finite number")
    return value


def a_time(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """Callback of the time flags: a time the daemon would refuse is refused here, naming
    the flag, in the same words for every command (ISO 8601, as the daemon parses it)."""
    if not value or ctx.resilient_parsing:
        return value
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad_value(
            param, f"{value!r} is not an ISO 8601 time (e.g. 2026-01-31T12:00:00Z)"
        ) from None
    return value


def name_value_pairs(
    ctx: typer.Context, param: typer.CallbackParam, values: list[str] | None
) -> list[str] | None:
    """Callback of ``-o NAME=VALUE``: a pair without ``=`` is a command-line mistake (exit 2),
    refused as the command line is read."""
    for pair in values or []:
        name, sep, _ = pair.partition("=")
        if not sep or not name.strip():
            raise bad_value(param, f"{pair!r} must look like NAME=VALUE (e.g. -o duration=10)")
    return values


OptionsOption = typer.Option(
    None,
    "--options",
    "--option",
    "-o",
    metavar="NAME=VALUE",
    callback=name_value_pairs,
    help="An option passed to the model as -NAME VALUE (repeatable).",
)
ExecutionClassOption = typer.Option(
    None, "--execution-class", help="Execution class (a limits profile of the daemon's config)."
)


def _mib(flag: str, help: str) -> Any:
    """A limit in MiB: a whole number from 1 to the daemon's cap."""
    return typer.Option(None, flag, min=1, max=MAX_MB, help=help)


def _seconds(flag: str, help: str) -> Any:
    """A limit in seconds: a finite number from 1 ms to the daemon's cap."""
    return typer.Option(None, flag, min=0.001, max=MAX_SECONDS, callback=finite, help=help)


MemoryOption = _mib("--memory-mb", "Memory limit in MiB.")
CpuOption = _seconds("--cpu-seconds", "CPU time limit in seconds.")
TimeoutOption = _seconds("--timeout", "Wall-clock limit in seconds.")
OutputMbOption = _mib("--output-mb", "Output size limit in MiB.")
DiskMbOption = _mib("--disk-mb", "Disk limit in MiB (all the run writes, TMPDIR included).")
RetriesOption = typer.Option(
    None,
    "--retries",
    min=0,
    max=3,
    help="Times a run is started again after the Dask worker running it was lost (0-3).",
)


def tail_option(help: str) -> Any:
    """Follow the run's log live: one set of spellings wherever it is offered (``-t``,
    ``-f``, ``-l`` and their long forms), so a habit from one command works in the other."""
    return typer.Option(False, "--tail", "-t", "--follow", "-f", "--logs", "-l", help=help)


SecretsCollectionOption = typer.Option(
    None,
    "--secrets-collection-id",
    help="Secrets collection delivered to the model (see orch app secrets; '' clears it).",
)
InstanceIdOption = typer.Option(
    None, "--instance-id", callback=an_id, help="Instance ID (required; the old -i works too)."
)
OldInstanceIdOption = typer.Option(
    None, "-i", hidden=True, callback=an_id, help="Old spelling of --instance-id."
)
WaitOption = typer.Option(False, "--wait", "-w", help="Wait for the end, then print the result.")


def renamed(value: Any, old_value: Any, old: str, new: str) -> Any:
    """The value of ``new``, or of its deprecated spelling ``old`` (with a note on stderr)."""
    if old_value is None or old_value == []:
        return value
    if value is not None and value != old_value:  # a usage error: its one line, no note
        fail(f"{old} and {new} say different things; give {new} only", code=2)
    say(f"note: {old} is deprecated here; use {new} (-i means the input, as in orch app run)")
    return old_value


def required(value: str | None, flag: str) -> str:
    if value is None:
        fail(f"missing option {flag}", code=2)
    return value


def pairs(mapping: dict[str, Any] | None) -> str:
    """``{"a": 1, "b": 2}`` → ``a=1, b=2``: reads like the flags that set it, and wraps well."""
    return ", ".join(f"{k}={v}" for k, v in (mapping or {}).items())


def parse_options(given: list[str] | None) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` → ``{"a": "1", "b": "x=y"}``; values stay strings, as the API wants."""
    options: dict[str, str] = {}
    for pair in given or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            fail(f"option {pair!r} must look like NAME=VALUE (e.g. -o duration=10)")
        options[name.strip()] = value
    return options


LIMIT_FLAGS = {
    "memory_mb": "--memory-mb",
    "cpu_seconds": "--cpu-seconds",
    "timeout_seconds": "--timeout",
    "output_mb": "--output-mb",
    "disk_mb": "--disk-mb",
    "retries": "--retries",
}
"""The API's field of each limit → the flag that sets it, in the order ``limits_body``
takes them: the one place the CLI pairs them (the body it sends, the errors it shows)."""
_LIMIT_FIELD = re.compile(r"\b(?:limits\.)?(" + "|".join(LIMIT_FLAGS) + r")\b")


def limits_body(
    memory_mb: int | None,
    cpu_seconds: float | None,
    timeout: float | None,
    output_mb: int | None,
    disk_mb: int | None = None,
    retries: int | None = None,
) -> dict[str, Any]:
    """The limits flags as the API's ``limits`` object, leaving out what was not given."""
    values = (memory_mb, cpu_seconds, timeout, output_mb, disk_mb, retries)
    given = zip(LIMIT_FLAGS, values, strict=True)
    return {k: v for k, v in given if v is not None}


@contextmanager
def limits_named_as_flags() -> Iterator[None]:
    """A refusal of the request that carried the limit flags names the flags typed
    (``--memory-mb=999999 exceeds the instance cap 256``), not the API's fields
    (``memory_mb=999999``): the daemon speaks to every client, the CLI to its user."""
    try:
        yield
    except ClientError as exc:
        exc.message = _LIMIT_FIELD.sub(lambda m: LIMIT_FLAGS[m.group(1)], exc.message)
        raise


def require_label_change(name: str | None, description: str | None) -> None:
    """Refuse a rename-or-redescribe update that changes nothing, before any request."""
    if name is None and description is None:
        fail("nothing to update: give --name or --description", code=2)
