"""Flags shared by commands that configure runs: ``-o NAME=VALUE`` options and limits.

Instances and runs take the same flags; parsing them in one place keeps the
two commands from drifting apart.
"""

from __future__ import annotations

from typing import Any

import typer

from orchestrator.cli.output import fail

OptionsOption = typer.Option(
    None,
    "--options",
    "--option",
    "-o",
    metavar="NAME=VALUE",
    help="An option passed to the model as -NAME VALUE (repeatable).",
)
ExecutionClassOption = typer.Option(
    None, "--execution-class", help="Execution class (a limits profile of the daemon's config)."
)
MemoryOption = typer.Option(None, "--memory-mb", min=1, help="Memory limit in MiB.")
CpuOption = typer.Option(None, "--cpu-seconds", min=0.001, help="CPU time limit in seconds.")
TimeoutOption = typer.Option(None, "--timeout", min=0.001, help="Wall-clock limit in seconds.")
OutputMbOption = typer.Option(None, "--output-mb", min=1, help="Output size limit in MiB.")
DiskMbOption = typer.Option(
    None, "--disk-mb", min=1, help="Disk limit in MiB (all the run writes, TMPDIR included)."
)


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


def limits_body(
    memory_mb: int | None,
    cpu_seconds: float | None,
    timeout: float | None,
    output_mb: int | None,
    disk_mb: int | None = None,
) -> dict[str, Any]:
    """The limits flags as the API's ``limits`` object, leaving out what was not given."""
    given = {
        "memory_mb": memory_mb,
        "cpu_seconds": cpu_seconds,
        "timeout_seconds": timeout,
        "output_mb": output_mb,
        "disk_mb": disk_mb,
    }
    return {k: v for k, v in given.items() if v is not None}
