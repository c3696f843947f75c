"""How the CLI speaks: results on stdout (tables, or the API's JSON with ``--json``),
messages and errors on stderr, a non-zero exit on failure.

Light on purpose: every command imports this module, so it writes plain text itself and
leaves tables to ``render`` (rich), which is imported only when a table is printed.
Tables show times and numbers the way people read them, as the console does: local time,
to the second, and numbers through ``orchestrator.formatting``, which both share.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NoReturn

import typer

from orchestrator.client import ClientError
from orchestrator.errors import OrchError
from orchestrator.formatting import local_time, number

Columns = Sequence[tuple[str, str]]
"""(header, key) pairs; keys may be dotted paths into nested objects."""
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""Control characters but newline and tab: C0, DEL and C1 (``\x9b`` is a one-byte CSI)."""
_C1 = re.compile(r"[\x7f-\x9f]")


def at_terminal(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (a person reads it); None when there is none."""
    return stream is not None and bool(stream.isatty())


def live(stream: Any) -> bool:
    """Lines redrawn in place (the status line, the time waited) need a terminal that
    erases a line; ``TERM=dumb`` (an editor's shell, some CI logs) prints the escape
    sequences as text, so it gets what a pipe gets."""
    return at_terminal(stream) and os.environ.get("TERM") != "dumb"


def coloured(stream: Any) -> bool:
    """Colour where lines can be redrawn, unless ``NO_COLOR`` is set: it asks for no
    colour, not for less feedback, so the live status line stays."""
    return live(stream) and not os.environ.get("NO_COLOR")


def shown(text: str, stream: Any) -> str:
    """``text`` made harmless for the terminal ``stream`` is, if it is one.

    A model's log lines, a run's name or an error quoting the log are anyone's text: an
    escape sequence in them could set the window title, clear the screen or redefine
    keys. At a terminal every control character but newline and tab is written as
    ``\\xNN``; into a pipe or a file the text goes byte for byte.
    """
    if not at_terminal(stream) or not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class ShownSink:
    """A sink of bytes (``download``'s) that writes them to the text ``stream`` as
    ``shown`` makes them: decoded as UTF-8 across the chunks' edges, control characters
    escaped at a terminal."""

    def __init__(self, stream: Any) -> None:
        import codecs

        self.stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def write(self, data: bytes) -> int:
        self.stream.write(shown(self._decoder.decode(data), self.stream))
        return len(data)

    def close(self) -> None:
        self.stream.write(shown(self._decoder.decode(b"", final=True), self.stream))
        self.stream.flush()


def say(message: str) -> None:
    """A message for the human (stderr), never mixed into the data on stdout."""
    sys.stderr.write(shown(message, sys.stderr) + "\n")
    sys.stderr.flush()


def note_undeclared(answer: Any) -> None:
    """``note: option 'x' is not declared ...`` on stderr for each option the daemon found
    undeclared in the version's app.yaml (``undeclared_options`` of its answer)."""
    for undeclared in answer.get("undeclared_options") or []:
        say(f"note: {undeclared['note']}")


def error_line(message: str) -> None:
    """``error: message`` on stderr; nothing if stderr itself cannot be written."""
    label = "\x1b[1;31merror:\x1b[0m" if coloured(sys.stderr) else "error:"
    try:
        sys.stderr.write(f"{label} {shown(message, sys.stderr)}\n")
        sys.stderr.flush()
    except OSError:
        pass  # the exit code is all that can still tell


def fail(message: str, code: int = 1) -> NoReturn:
    """``error: message`` and exit ``code``; code 2 is a command-line mistake, said as
    click's usage errors are (``usage``): with ``; see 'orch CMD -h'``, as documented."""
    if code == 2:
        from orchestrator.cli.usage import refuse  # only a failed command pays for it

        refuse(message)
    error_line(message)
    raise typer.Exit(code)


def command_line(command: str, *flags: tuple[str, str], home: Path | None = None) -> str:
    """``orch COMMAND FLAG VALUE ... [--home HOME]``: a next step a message names, complete
    enough to paste (the app, the object's ID, the home the user gave), values quoted for
    the shell where they need it."""
    from shlex import quote  # only the commands that print a hint pay for it

    words = [f"orch {command}"] + [f"{flag} {quote(value)}" for flag, value in flags]
    if home is not None:
        words.append(f"--home {quote(str(home))}")
    return " ".join(words)


@contextmanager
def errors_to_exit() -> Iterator[None]:
    """Turn client and domain errors into a message on stderr and exit code 1."""
    try:
        yield
    except (ClientError, OrchError) as exc:
        fail(exc.message)


def writable_file(ctx: typer.Context, param: typer.CallbackParam, dest: Path | None) -> Path | None:
    """Typer callback of the options naming a file to write (``-u FILE``): a file that
    could not be written is refused as the command line is read, before a run is
    created or waited for, not with a traceback once its output has arrived.

    An empty path (``-u "$UNSET"``) reaches here as ``Path("")``, which is ``.``: its
    folder exists, so it passed every check and the run was made, to fail on writing
    ``.``. (A ``.`` typed is a folder, which the option's type refuses first.)"""
    if dest is None or ctx.resilient_parsing:  # shell completion: nothing is written
        return dest
    if not dest.parts or not str(dest).strip():
        from orchestrator.cli.flags import flag_of  # flags imports this module

        unset = "is a shell variable unset?"
        fail(f"{flag_of(param)} is empty: give a file to write ({unset})", code=2)
    folder = dest.parent
    if not folder.is_dir():
        fail(f"cannot write {dest}: the folder {folder} does not exist")
    if dest.exists() and not os.access(dest, os.W_OK):
        fail(f"cannot write {dest}: permission denied")
    if not dest.exists() and not os.access(folder, os.W_OK | os.X_OK):
        fail(f"cannot write {dest}: the folder {folder} is not writable")
    return dest


@contextmanager
def writing(where: object) -> Iterator[None]:
    """An ``OSError`` while writing ``where`` (a full disk, a quota) becomes
    ``error: cannot write <where>: <reason>`` and exit code 1."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            raise
        fail(f"cannot write {where}: {exc.strerror or exc}")


class OutputFile:
    """A file named by the user (``-u FILE``, ``--html FILE``), opened at its first byte.

    Written in place, never replaced: through a symlink to the file it names, into a FIFO
    or a device, as the shell's ``>`` does. (A temporary sibling renamed over the path
    once replaced a FIFO, a device node or a symlink with a regular file.) Opened only
    when the first byte arrives, so a request the daemon refuses (a run that is not
    there, a gate that does not parse) leaves what the path held untouched."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self._fh: IO[bytes] | None = None

    def write(self, data: bytes, /) -> int:
        return self._opened().write(data)

    def finish(self) -> None:
        """An output with no byte is still an (empty) file, as ``>`` makes one."""
        self._opened()
        self.close()

    def _opened(self) -> IO[bytes]:
        if self._fh is None:
            self._fh = self.dest.open("wb")
        return self._fh

    def close(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            fh.close()


@contextmanager
def open_output(dest: Path, empty: bool = True) -> Iterator[OutputFile]:
    """``dest`` to write (``OutputFile``), its write errors turned into one line
    (``writing``): the one way a command writes a path the user named. ``empty=False``:
    no byte written leaves ``dest`` as it was, for what may have nothing to write."""
    out = OutputFile(dest)
    with writing(dest):
        try:
            yield out
            if empty:
                out.finish()
        finally:
            out.close()


def print_json(data: Any) -> None:
    """Indented for a person at a terminal, one compact line for a pipe or a file."""
    if sys.stdout.isatty():
        text = _escape_c1(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _escape_c1(text: str) -> str:
    """JSON escapes C0 controls, not DEL and C1 ones: ``\\x9b`` alone starts an escape
    sequence on some terminals. Escaped as ``\\u009b``, the JSON stays the same."""
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def emit(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    """The single switch between script output and human output."""
    if as_json:
        print_json(data)
    else:
        human(data)


def table(rows: Sequence[Any], columns: Columns, title: str | None = None) -> None:
    """A table of ``rows`` (dicts) on stdout, one column per (header, key)."""
    from orchestrator.cli import render  # rich: only commands that print a table pay for it

    cells = [[shown(cell(pluck(row, key)), sys.stdout) for _, key in columns] for row in rows]
    ids = {n for n, (_, key) in enumerate(columns) if is_id_key(key)}
    render.table([header for header, _ in columns], cells, title, whole=ids)


def record(data: Any, fields: Columns) -> None:
    """One object as a two-column table (label, value)."""
    from orchestrator.cli import render  # rich, as in ``table``

    render.record([(label, shown(cell(pluck(data, key)), sys.stdout)) for label, key in fields])


def is_id_key(key: str) -> bool:
    """The column of the rows' own IDs is shown whole: a cut ID cannot be pasted into the
    next command. (IDs of other objects, like instances, are short and may wrap.)"""
    return key.rsplit(".", 1)[-1] == "id"


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
        return number(value)
    if isinstance(value, str) and _TIMESTAMP.fullmatch(value):
        return local_time(value)
    return str(value)
