"""What a finished run produced, printed: its output on stdout, one summary line on stderr.

Piped, the output goes out byte for byte as the model wrote it. At a terminal, JSON
is indented for reading; archives (folder outputs) are not printed there, since they
would only garble the screen: the command that saves one is said instead.

A run that did not succeed is shown with what its model printed (a partial result,
before it failed), as the API and the SDK give it; one with none shows nothing but its
summary.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orchestrator.cli import stdout
from orchestrator.cli.output import command_line, open_output, print_json, say
from orchestrator.client import ClientError, OrchClient
from orchestrator.client.types import EnsembleResult, RunInfo

EXIT_CODES = {"succeeded": 0, "failed": 1, "canceled": 2}
ARCHIVE_FORMATS = ("multi-file", "csv-archive")
PRETTY_MAX = 8 * 1024 * 1024
"""Above this, even a terminal gets the output as it is: indenting it would not help."""


def deliver(
    api: OrchClient,
    app_id: str,
    info: RunInfo,
    output: Path | None,
    as_json: bool,
    logs: bool,
    home: Path | None,
) -> int:
    """Print what a finished run produced; returns the exit code its status maps to.

    ``logs``: the log was shown already (``--tail``), so the error stays on one line.
    ``home``: the one the user gave, for a command said to them to work as pasted.
    """
    status = info["metadata"]["status_v2"]
    ensemble = _ensemble(api, app_id, info)
    hint = None
    with _until_the_reader_leaves():
        if as_json:
            result: dict[str, Any] = dict(api.runs.result(app_id, info["id"]))
            print_json(result | ({"ensemble": ensemble} if ensemble else {}))
        if output is not None or not as_json:
            hint = _write_output(api, app_id, info, output, home)
    say(summary(info, full_error=not logs))
    if status == "failed" and not logs:  # a timeout or a limit names no line of the log
        where = ("-a", app_id), ("-r", info["id"])
        say(f"its log: {command_line('app run logs', *where, home=home)}")
    if hint is not None:
        say(hint)
    if ensemble is not None:
        from orchestrator.cli.ensemble_view import winner_line

        say(winner_line(ensemble))
    return EXIT_CODES[status]


def _ensemble(api: OrchClient, app_id: str, info: RunInfo) -> EnsembleResult | None:
    """What an ensemble run chose (the SDK's ``RunResult.ensemble``); None for other runs."""
    if (info["metadata"].get("run_type") or {}).get("type") != "ensemble":
        return None
    return api.ensembles.result(app_id, info["id"])


def summary(info: RunInfo, full_error: bool) -> str:
    """One line; the daemon's error may go on with the log's tail, kept unless it was shown."""
    meta = info["metadata"]
    status, took = meta["status_v2"], meta.get("duration") or 0
    never_ran = status == "canceled" and not took  # canceled while it waited in the queue
    line = f"run {info['id']} {status}"
    line += " before it started" if never_ran else f" in {took / 1000:.2f} s"
    if meta.get("peak_memory_mb") is not None:
        line += f", peak memory {meta['peak_memory_mb']:.1f} MiB"
    error = meta.get("error") or ""
    if error and error != status:  # "canceled in 0.00 s: canceled" said it twice
        line += f": {error if full_error else error.splitlines()[0]}"
    return line


def archive_hint(what: str, action: str, app_id: str, run_id: str, home: Path | None) -> str:
    """Said instead of a tar.gz (a folder-format run's ``what``, read by ``orch app run
    ACTION``) at a terminal: the command that saves it, complete enough to paste."""
    flags = ("-a", app_id), ("-r", run_id), ("--output", "FILE")
    command = command_line(f"app run {action}", *flags, home=home)
    return f"the {what} is a tar.gz archive, not shown at a terminal: save it with {command}"


@contextmanager
def _until_the_reader_leaves() -> Iterator[None]:
    """``| head``: a reader that has read enough closes the pipe, and the rest of the output
    has nowhere to go. That is no failure of the run, so its summary and the exit code of
    its status still come, as when the reader takes it all (``main`` ends other commands
    there, with exit code 1, for they have nothing left to say)."""
    try:
        yield
    except BrokenPipeError:
        stdout.discard()  # what is still buffered goes nowhere, quietly


def _write_output(
    api: OrchClient, app_id: str, info: RunInfo, dest: Path | None, home: Path | None
) -> str | None:
    """Write the output where it goes; returns instead, for an archive a terminal would
    show as noise, the hint that says how to save it (said after the summary).

    A folder-format run that did not succeed gets nothing: its archive is built from the
    output folder even when the model wrote no file there, so it cannot be told from
    none, and an empty tar.gz in a pipe would be noise too."""
    is_archive = info["metadata"]["format"]["output"]["type"] in ARCHIVE_FORMATS
    if is_archive and info["metadata"]["status_v2"] != "succeeded":
        return None
    if dest is None and sys.stdout.isatty() and is_archive:
        return archive_hint("output", "result", app_id, info["id"], home)
    with _none_if_absent(info):
        if dest is not None:
            _to_file(api, app_id, info, dest)
        elif not sys.stdout.isatty():
            sys.stdout.flush()
            api.runs.download_output(app_id, info["id"], sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            _to_terminal(api, app_id, info["id"])
    return None


@contextmanager
def _none_if_absent(info: RunInfo) -> Iterator[None]:
    """A run that did not succeed may have no output at all (canceled before it started):
    the daemon's 404 then says only that, and the summary says the rest. A succeeded
    run's output missing is an error."""
    try:
        yield
    except ClientError as exc:
        if exc.status != 404 or info["metadata"]["status_v2"] == "succeeded":
            raise


def _to_file(api: OrchClient, app_id: str, info: RunInfo, dest: Path) -> None:
    """A run that did not succeed and wrote nothing leaves ``dest`` as it was: an empty
    file there would pass for the result of a run that has none."""
    succeeded = info["metadata"]["status_v2"] == "succeeded"
    with open_output(dest, empty=succeeded) as fh:
        last = api.runs.download_output(app_id, info["id"], fh)
    if last or succeeded:
        say(f"wrote {dest}")


def _to_terminal(api: OrchClient, app_id: str, run_id: str) -> None:
    """Indented when it is JSON of a readable size; as it is otherwise, as when it nests
    deeper than Python's recursion limit lets ``json`` read or write it."""
    held = _HoldThenPass(PRETTY_MAX)
    api.runs.download_output(app_id, run_id, held)
    if held.passing:
        raw = held.last
    else:
        raw = bytes(held.held)
        try:
            print_json(json.loads(raw))
            return
        except (ValueError, UnicodeDecodeError, RecursionError):
            sys.stdout.buffer.write(raw)
    if raw and not raw.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")  # keep the prompt off the output's last line
    sys.stdout.buffer.flush()


class _HoldThenPass:
    """Holds what it is given up to ``limit`` bytes, then passes everything to stdout."""

    def __init__(self, limit: int) -> None:
        self.limit, self.held, self.passing, self.last = limit, bytearray(), False, b""

    def write(self, data: bytes) -> int:
        if not self.passing:
            self.held += data
            if len(self.held) <= self.limit:
                return len(data)
            data, self.passing = bytes(self.held), True
            self.held.clear()
            sys.stdout.flush()
        sys.stdout.buffer.write(data)
        self.last = data[-1:] or self.last
        return len(data)
