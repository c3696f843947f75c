"""One line of live status on a terminal (stderr), redrawn in place and wiped at the end.

Only ever used when the stream is a terminal: off one, commands stay quiet and
scriptable, and nothing here is written.
"""

from __future__ import annotations

import os
from typing import TextIO

_WIPE = "\r\x1b[2K"
"""Back to column 0, erase the line: what was shown leaves no trace."""
ELLIPSIS = "…"


class StatusLine:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._shown = False
        self._text = ""

    def show(self, text: str) -> None:
        """Draw ``text``, cut to the terminal's width: a line that wrapped would leave its
        first rows behind at every redraw, since the wipe erases only the last row."""
        text = fit(text, _columns(self._stream))
        self._stream.write(_WIPE + text)
        self._stream.flush()
        self._shown, self._text = True, text

    def above(self, lines: list[str]) -> None:
        """Write ``lines`` (a log's) above the status line, which stays the last line."""
        if not lines:
            return
        text = "".join(f"{line}\n" for line in lines)
        self._stream.write(_WIPE + text + self._text if self._shown else text)
        self._stream.flush()

    def clear(self) -> None:
        """Wipe the line, so a message or log line can take its place."""
        if self._shown:
            self._stream.write(_WIPE)
            self._stream.flush()
            self._shown = False


def fit(text: str, columns: int | None) -> str:
    """``text`` in fewer than ``columns`` characters (the last column is left free: some
    terminals wrap as soon as it is written), with ``…`` where it was cut."""
    if columns is None or len(text) < columns:
        return text
    room = max(columns - 1, 1)
    return text[: room - 1] + ELLIPSIS if room > 1 else text[:room]


def _columns(stream: TextIO) -> int | None:
    """The terminal's width now (it may have been resized since the last redraw)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns or None
    except (OSError, ValueError, AttributeError):
        return None
