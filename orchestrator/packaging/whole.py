"""Whether a package file is whole, not the first part of one still being written.

A gzip stream that ends (its end-of-stream marker; every member of a multi-member file)
and a tar inside it that ends (two blocks of zeros): a package written in place is pushed
at once only when both hold (``inbox``), and checked as it is copied out
(``WholeCheck``), in the same read.
"""

from __future__ import annotations

import zlib

TAR_END = 2 * 512
"""A tar archive ends with two blocks of zeros: a tar cut at a member boundary has none."""
INFLATE_STEP = 64 * 1024
"""Bytes inflated at a time: 1 MiB at once took three times as long (each step's 1 MiB
output is a fresh allocation whose pages fault in anew: 23,000 faults for 50 MiB)."""


class WholeCheck:
    """Fed a package's bytes as they go by (``feed``), says whether they were a whole
    archive (``whole``): a package copied out is checked in the same read, not read once
    to check it and again to copy it."""

    def __init__(self) -> None:
        self.size = 0
        self.gzip: bool | None = None
        """Decided by the first two bytes."""
        self._head = b""
        self._tail = b""
        """The last ``TAR_END`` bytes: of the file (a plain tar), of the tar inflated (gzip)."""
        self._inflate = zlib.decompressobj(wbits=31)
        self._ended = self._broken = False
        self._inflated = 0

    def feed(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        if self.gzip is None:
            if len(self._head) + len(data) < 2:
                self._head += bytes(data)
                return
            data, self._head = (self._head + bytes(data) if self._head else data), b""
            self.gzip = bytes(data[:2]) == b"\x1f\x8b"
        if not self.gzip:
            self._tail = (self._tail + bytes(data[-TAR_END:]))[-TAR_END:]
            return
        view = memoryview(data)
        for start in range(0, len(view), INFLATE_STEP):
            self._inflate_some(view[start : start + INFLATE_STEP])

    def _inflate_some(self, chunk: bytes | memoryview) -> None:
        while chunk and not self._broken:
            if self._ended:  # bytes after a member that ended: the next member starts
                self._inflate, self._ended = zlib.decompressobj(wbits=31), False
            try:
                out = self._inflate.decompress(chunk)
            except zlib.error:
                self._broken = True
                return
            self._inflated += len(out)
            self._tail = (self._tail + out[-TAR_END:])[-TAR_END:]
            self._ended = self._inflate.eof
            chunk = self._inflate.unused_data if self._ended else b""

    def whole(self) -> bool:
        if self.gzip:
            return (
                self._ended
                and not self._broken
                and self._inflated % 512 == 0
                and self._tail == bytes(TAR_END)
            )
        return self.size >= TAR_END and self.size % 512 == 0 and self._tail == bytes(TAR_END)
