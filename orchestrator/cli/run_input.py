"""The input of ``orch app run``: found, checked and sent.

Checked before anything reaches the daemon: an empty, missing or unreadable input
would otherwise become a run that dies in the model with a traceback, so it is
refused here with a message saying what was wrong. Small JSON travels inline;
text, folders and anything large are uploaded (streamed from disk).

An input must also fit the app's format, that of the executable the run would use
(``_formats``): a folder is sent as a multi-file (or csv-archive) archive, which a json
or text model cannot read, and a file is no input for a multi-file or csv-archive model,
which reads a folder. A folder's format is looked up first (``folder_format``); so is
that of an app given text the CLI sends as such (``file_fits``), which the daemon would
take for any app. A JSON file, most runs, asks nothing: the daemon reads it in the app's
format and refuses it, before any run exists, when that is a folder's; only then is the
format looked up, to say what to give instead (``RunInput.refused``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from orchestrator.cli.output import fail
from orchestrator.client import ClientError, OrchClient
from orchestrator.standard_json import refuse_constant

INLINE_MAX = 5 * 1024 * 1024
"""Inputs up to this size go inline as JSON; above it (as the SDK does) through an upload."""
_JSON_ARRAY = re.compile(rb"\[\s*[\[{\"\]\d-]")
"""An array of numbers, strings, objects or arrays: ``[section]`` (an INI file) is text."""
FOLDER_FORMATS = ("multi-file", "csv-archive")
"""The formats whose input is a folder (the daemon's ``runs.inputs.DIRECTORY_FORMATS``)."""
DEVINT_NAMES = ("devint", "latest")
"""Instances that run the app's last push (the daemon's ``models.RESERVED_INSTANCES``;
not imported: the domain's models would cost every ``orch app run`` 25 ms)."""


REFUSED = (400, 422)
"""The daemon's answers to an input it cannot read in the run's format (``Invalid``: JSON
for a folder format; ``Unprocessable``: a file that is not an archive)."""


class RunInput(NamedTuple):
    """What the run body says about the input: inline JSON, a file to upload, or a folder
    to upload as a tar.gz once its format is known (``fmt`` None: the app's, looked up for
    a folder, read by the daemon for a file). ``guessed``: sent as text because it is not
    JSON, a format nobody said, so checked against the app's before the run."""

    fmt: str | None
    inline: Any = None
    upload: Path | None = None
    folder: Path | None = None
    guessed: bool = False

    def fitted(
        self, api: OrchClient, app_id: str, instance: str | None, ensemble: str | None
    ) -> RunInput:
        """The input with the format it is sent in, once it is known to fit the app: a
        folder takes the app's (a json or text app refuses it), guessed text is refused
        by a folder app. A JSON file, or a format said with --format, asks nothing."""
        if self.folder is not None and self.fmt is None:
            return self._replace(fmt=folder_format(api, app_id, instance, ensemble))
        if self.guessed:
            file_fits(api, app_id, instance, ensemble)
        return self

    def refused(
        self,
        api: OrchClient,
        app_id: str,
        instance: str | None,
        ensemble: str | None,
        refusal: ClientError,
    ) -> None:
        """Called when the daemon refused the run: a file it read in the app's format (no
        request asked that format first) is refused by a folder app in the API's words
        (``upload as a tar.gz (POST .../runs/uploadurl)``); said here as what to type
        instead. Returns when that was not why, for the daemon's message to be shown."""
        if self.folder is None and self.fmt is None and refusal.status in REFUSED:
            file_fits(api, app_id, instance, ensemble)

    def body(self, api: OrchClient, app_id: str, tmp: Scratch) -> dict[str, Any]:
        if self.folder is not None:
            return {"upload_id": api.runs.upload(app_id, _tar(self.folder, tmp / "input.tar.gz"))}
        if self.upload is not None:
            return {"upload_id": api.runs.upload(app_id, self.upload)}
        return {"input": self.inline}


class Scratch:
    """A temporary folder made on first use: an input on stdin is spooled into it and a
    folder archived there, while a file (most runs) is read where it is, and then the
    command makes no folder at all (nor imports ``tempfile``)."""

    def __init__(self) -> None:
        self._root: Path | None = None

    def __enter__(self) -> Scratch:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)

    @property
    def made(self) -> Path | None:
        """The folder, once something needed it."""
        return self._root

    def __truediv__(self, name: str) -> Path:
        if self._root is None:
            import tempfile

            self._root = Path(tempfile.mkdtemp(prefix="orch-input-"))
        return self._root / name


def read_input(source: str | None, fmt: str | None, tmp: Scratch) -> RunInput:
    """Find the input (a file, a folder, or stdin) and check it, before any run exists."""
    path = _local_path(source, tmp)
    if path.is_dir():
        if fmt is not None and fmt not in FOLDER_FORMATS:
            fail(
                f"--format {fmt} takes a file, and {source} is a folder (sent as "
                f"{' or '.join(FOLDER_FORMATS)}): give -i FILE",
                code=2,
            )
        _check_folder(path)
        return RunInput(fmt, folder=path)
    if fmt in FOLDER_FORMATS:
        name = source if source not in (None, "-") else "the input on stdin"
        fail(f"--format {fmt} takes a folder, and {name} is a file: give -i FOLDER", code=2)
    size = _check_file(path, source)
    if fmt in (None, "json") and size <= INLINE_MAX:
        value, error = _json_of(path, source, fmt)
        if isinstance(value, dict | list):
            return RunInput(fmt, inline=value)
        if fmt is None and error is not None:
            return RunInput("text", upload=path, guessed=True)
    return RunInput(fmt, upload=path)


def folder_format(api: OrchClient, app_id: str, instance: str | None, ensemble: str | None) -> str:
    """The format a folder input is sent as: the app's. A json or text app is refused,
    before any run exists: its model would get an archive of files and fail on it."""
    formats = _formats(api, app_id, instance, ensemble)
    for target, fmt in formats:
        if fmt not in FOLDER_FORMATS:
            fail(
                f"app {app_id} (instance {target}) takes {fmt} input, not a folder: "
                "give a file (-i FILE) or pipe it on stdin",
                code=2,
            )
    return formats[0][1]


def file_fits(api: OrchClient, app_id: str, instance: str | None, ensemble: str | None) -> None:
    """``folder_format``'s mirror: a multi-file or csv-archive app refuses a file (or
    stdin), before any run exists: its model reads a folder, and would find none."""
    for target, fmt in _formats(api, app_id, instance, ensemble):
        if fmt in FOLDER_FORMATS:
            fail(
                f"app {app_id} (instance {target}) takes {fmt} input: give a folder (-i FOLDER)",
                code=2,
            )


def _formats(
    api: OrchClient, app_id: str, instance: str | None, ensemble: str | None
) -> list[tuple[str, str]]:
    """(instance, format) of each executable the run would use: the instance's (devint
    when none is given), or each run group's for an ensemble."""
    if ensemble is not None:
        groups = api.ensembles.get(app_id, ensemble)["run_groups"]
        targets = list(dict.fromkeys(g["instance_id"] for g in groups))
    else:
        targets = [instance or "devint"]
    return [_format_of(api, app_id, target) for target in targets]


def _format_of(api: OrchClient, app_id: str, instance: str) -> tuple[str, str]:
    """(the instance, the content format of the executable it runs: app.yaml's
    ``configuration.content.format``), resolved as the daemon does: ``default`` is the
    app's default instance (devint when it has none), devint the last push, any other
    instance its version."""
    if instance == "default":
        instance = api.apps.get(app_id)["default_instance"] or "devint"
    if instance in DEVINT_NAMES:
        exe = api.apps.executable(app_id)
    else:
        version_id = api.instances.get(app_id, instance)["version_id"]
        exe = api.versions.get(app_id, version_id)["executable"]
    return instance, exe["requirements"]["io_configuration"]["format"]


def kept_input_format(path: Path, fmt: str | None) -> str:
    """The format of a file kept as an input for later runs (an input set's ``--file`` and
    ``--dir``), checked as ``orch app run -i`` checks its input: each of the set's inputs
    becomes a run's input, so what a run would refuse, the set refuses now, not when an
    experiment's runs die in the model. json when it parses (or ``--format json``), else
    text; an empty or unreadable file, or one meant as JSON that does not parse, fails."""
    if not path.is_file():  # a FIFO would be read up by the checks, before its upload
        fail(f"input {path} is not a regular file: save it to a file first")
    _check_file(path, str(path))
    if fmt == "text":
        return fmt
    _, error = _json_of(path, str(path), fmt)
    return "text" if error is not None else "json"


def _json_of(path: Path, source: str | None, fmt: str | None) -> tuple[Any, str | None]:
    """``_parse_json``, failing when the input was meant as JSON and does not parse."""
    value, error = _parse_json(path)
    if error is not None and _meant_as_json(path, source, fmt):
        name = source if source not in (None, "-") else "the input on stdin"
        fail(f"{name} is not valid JSON: {error}; --format text sends it as text")
    return value, error


def _meant_as_json(path: Path, source: str | None, fmt: str | None) -> bool:
    """Whether the input is meant to be JSON: ``--format json``, a ``.json`` name, or text
    that opens like JSON. Such input that does not parse is refused: sent as text it
    would reach a JSON model and die there with a traceback. Other text goes as it is
    (text apps exist)."""
    if fmt == "json" or (source or "").lower().endswith(".json"):
        return True
    with path.open("rb") as fh:
        head = fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1] == b"{" or _JSON_ARRAY.match(head) is not None


def _local_path(source: str | None, tmp: Scratch) -> Path:
    """The input as a regular file or folder; stdin and pipes (``-i <(cmd)``) are spooled
    to a file first, since they can be read only once and may be large."""
    if source is None and (sys.stdin is None or sys.stdin.isatty()):
        fail("no input: give one with -i FILE (or -i FOLDER), or pipe it on stdin")
    if source is None or source == "-":
        return _spool(sys.stdin.buffer, tmp / "stdin", "the input on stdin")
    if not source.strip():  # -i "$UNSET": Path("") would be "." and send the whole folder
        fail("the input path is empty (an unset variable?): give -i FILE, -i FOLDER or -i -")
    path = Path(source).expanduser()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        fail(f"input {source} does not exist")
    except OSError as exc:
        fail(f"cannot read input {source}: {exc.strerror}")
    if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
        return path
    try:
        with path.open("rb") as fh:
            return _spool(fh, tmp / "piped", f"input {source}")
    except OSError as exc:
        fail(f"cannot read input {source}: {exc.strerror}")


def _spool(stream: Any, dest: Path, what: str) -> Path:
    with dest.open("wb") as fh:
        shutil.copyfileobj(stream, fh)
    if dest.stat().st_size == 0:
        fail(f"{what} is empty: a run needs an input (give one with -i FILE)")
    return dest


def _check_file(path: Path, source: str | None) -> int:
    """The file's size, once it is known to be readable and not empty."""
    name = source if source not in (None, "-") else "the input"
    _check_readable(path, name)
    size = path.stat().st_size
    if size == 0:
        fail(f"input {name} is empty: a run needs an input")
    return size


def _check_readable(path: Path, name: str) -> None:
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        fail(f"cannot read input {name}: {exc.strerror}")


def _check_folder(folder: Path) -> None:
    """Every file of the folder must be readable, and there must be at least one. Only
    regular files go into the archive (and a FIFO would block the read)."""
    found = False
    for root, _dirs, files in os.walk(folder, onerror=_walk_error):
        for name in files:
            path = Path(root, name)
            if path.is_file():
                found = True  # an empty file in a folder is fine: it can be a model's input
                _check_readable(path, str(path))
    if not found:
        fail(f"input folder {folder} holds no files: a run needs an input")


def _walk_error(exc: OSError) -> None:
    fail(f"cannot read input folder {exc.filename}: {exc.strerror}")


def _parse_json(path: Path) -> tuple[Any, str | None]:
    """(the file's JSON value, None), or (None, why it is not JSON)."""
    try:
        with path.open("rb") as fh:
            return json.load(fh, parse_constant=refuse_constant), None
    except UnicodeDecodeError as exc:
        return None, f"it is not UTF-8 text ({exc.reason})"
    except json.JSONDecodeError as exc:
        return None, f"{exc.msg} (line {exc.lineno} column {exc.colno})"
    except ValueError as exc:  # NaN or Infinity: Python's json reads them, JSON has none
        return None, str(exc)
    except RecursionError:  # nested too deeply for this parser: sent as it is
        return None, None


def _tar(folder: Path, dest: Path) -> Path:
    import tarfile  # folders are the rare input: every other run would pay its import

    with tarfile.open(dest, "w:gz") as tar:
        for item in sorted(folder.rglob("*")):
            if item.is_file():
                tar.add(item, arcname=item.relative_to(folder).as_posix())
    return dest
