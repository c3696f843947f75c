"""One line of live status on a terminal (stderr), redrawn in place and wiped at the end.

Only ever used when the stream is a terminal: off one, commands stay quiet and
scriptable, and nothing here is written.
"""

from __future__ import annotations

from typing import TextIO

_WIPE = "\r\x1b[2K"
"""Back to column 0, erase the line: what was shown leaves no trace."""


class StatusLine:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._shown = False
        self._text = ""

    def show(self, text: str) -> None:
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
