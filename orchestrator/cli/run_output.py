"""What a finished run produced, printed: its output on stdout, one summary line on stderr.

Piped, the output goes out byte for byte as the model wrote it. At a terminal, JSON
is indented for reading; archives (folder outputs) are refused there, since they
would only garble the screen.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from orchestrator.cli.output import fail, open_output, print_json, say
from orchestrator.client import OrchClient
from orchestrator.client.types import EnsembleResult, RunInfo

EXIT_CODES = {"succeeded": 0, "failed": 1, "canceled": 2}
ARCHIVE_FORMATS = ("multi-file", "csv-archive")
PRETTY_MAX = 8 * 1024 * 1024
"""Above this, even a terminal gets the output as it is: indenting it would not help."""


def deliver(
    api: OrchClient, app_id: str, info: RunInfo, output: Path | None, as_json: bool, logs: bool
) -> int:
    """Print what a finished run produced; returns the exit code its status maps to.

    ``logs``: the log was shown already (``--tail``), so the error stays on one line.
    """
    status = info["metadata"]["status_v2"]
    ensemble = _ensemble(api, app_id, info)
    if as_json:
        result: dict[str, Any] = dict(api.runs.result(app_id, info["id"]))
        print_json(result | ({"ensemble": ensemble} if ensemble else {}))
    if status == "succeeded" and (output is not None or not as_json):
        _write_output(api, app_id, info, output)
    say(summary(info, full_error=not logs))
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
    line = f"run {info['id']} {meta['status_v2']} in {(meta.get('duration') or 0) / 1000:.2f} s"
    if meta.get("peak_memory_mb") is not None:
        line += f", peak memory {meta['peak_memory_mb']:.1f} MiB"
    error = meta.get("error") or ""
    if error:
        line += f": {error if full_error else error.splitlines()[0]}"
    return line


def _write_output(api: OrchClient, app_id: str, info: RunInfo, dest: Path | None) -> None:
    is_archive = info["metadata"]["format"]["output"]["type"] in ARCHIVE_FORMATS
    if dest is not None:
        with open_output(dest) as fh:
            api.runs.download_output(app_id, info["id"], fh)
        say(f"wrote {dest}")
    elif not sys.stdout.isatty():
        sys.stdout.flush()
        api.runs.download_output(app_id, info["id"], sys.stdout.buffer)
        sys.stdout.buffer.flush()
    elif is_archive:
        fail("the output is a tar.gz archive: write it to a file with --output FILE")
    else:
        _to_terminal(api, app_id, info["id"])


def _to_terminal(api: OrchClient, app_id: str, run_id: str) -> None:
    """Indented when it is JSON of a readable size; as it is otherwise."""
    held = _HoldThenPass(PRETTY_MAX)
    api.runs.download_output(app_id, run_id, held)
    if held.passing:
        raw = held.last
    else:
        raw = bytes(held.held)
        try:
            print_json(json.loads(raw))
            return
        except (ValueError, UnicodeDecodeError):
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
