"""One write to the socket per response: uvicorn's protocol over a coalescing transport.

uvicorn writes a response's status line and headers in one ``transport.write`` and its
body in another, and uvloop sends each at once: two TCP segments on loopback for a
JSON answer of a few hundred bytes, each a trip through the kernel's TCP stack (paid
by the sender on loopback). Every run costs two such answers (its creation and its
result); one segment each saved the daemon ~0.1 ms of CPU per CPU-bound run on this
project's benchmark VM (paired runs, 3 of 4 passes lower).

``CoalescingTransport`` keeps what is written during one turn of the event loop and
hands it to the real transport in one write at the end of that turn (``call_soon``),
so a response written in one go leaves in one segment, and a streamed one (a file, a
live log) still leaves chunk by chunk, each as soon as its writer yields. Closing
flushes first, so nothing written before a close is lost.

``HttpProtocol`` also bounds a request's head (request line and headers): httptools keeps
whatever it is given, so one client sending a header without end grew the daemon by its
size and stalled the loop for seconds, before any key was checked.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from orchestrator.daemon_log import Repeated


class CoalescingTransport(asyncio.Transport):
    """A transport whose writes within one loop turn reach the wrapped one as one write."""

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._held:
            asyncio.get_running_loop().call_soon(self._flush)
        self._held.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def _flush(self) -> None:
        held, self._held = self._held, []
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held = []
        self._transport.abort()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._held))

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


MAX_HEAD_BYTES = 64 * 1024
"""A request's line and headers together: ``http.client``'s bound on one line (uvicorn's h11
protocol allows 16 KiB for all). orch's own requests use well under 2 KiB."""

HEAD_TOO_LARGE = f"request line and headers over {MAX_HEAD_BYTES // 1024} KiB"
_HEAD_REFUSALS = Repeated(logging.getLogger("uvicorn.error"), f"request refused: {HEAD_TOO_LARGE}")
"""A client can send big heads in a loop: daemon.log says so once a minute, with a count."""


def pipelined_head(piece: bytes, body_read: int) -> int:
    """How many bytes at the end of ``piece`` belong to a head that began in it after another
    request ended: the parser does not say where it began. Never fewer than it holds: the
    head is still open, so its bytes hold no empty line (``\\r\\n\\r\\n`` ends a head), and
    every body byte parsed from ``piece`` lies before it. It may count more: the heads of
    requests before it in ``piece`` whose bodies are there too (a few hundred bytes each)."""
    start = max(piece.rfind(b"\r\n\r\n") + 4, body_read)
    return len(piece) - start


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through a ``CoalescingTransport``, with a
    request's head held to ``MAX_HEAD_BYTES`` (431 and the connection closed beyond), and
    the refusals it makes itself in JSON, as every other error of the daemon."""

    _head_room: int | None = MAX_HEAD_BYTES
    """What the head being read may still take; None while a body is read (not counted)."""
    _ended = _began = False
    """A request ended during the current feed / a next one began after it."""
    _body_read = 0
    """Body bytes parsed during the current feed: they lie before any head that begins in it."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport))

    def data_received(self, data: bytes) -> None:
        """Feed ``data`` in pieces no longer than the head being read may take (a body: no
        longer than a head may be), so that a head the pieces do not end is too large,
        wherever it began; usually ``data`` is one piece, fed as uvicorn does."""
        while data and not self.transport.is_closing():
            room = self._head_room
            if room is not None and room <= 0:
                self._refuse_head()
                return
            size = MAX_HEAD_BYTES if room is None else room
            piece, data = (data, b"") if len(data) <= size else (data[:size], data[size:])
            self._feed(piece)

    def _feed(self, piece: bytes) -> None:
        """Parse ``piece``, charging the head being read for it; a next request's head that
        begins inside it (pipelined behind the end of one) is charged its share too."""
        if self._head_room is not None:
            self._head_room -= len(piece)
        self._ended = self._began = False
        self._body_read = 0
        super().data_received(piece)
        if self._ended and self._began and self._head_room is not None:
            self._head_room -= pipelined_head(piece, self._body_read)

    def on_message_begin(self) -> None:
        self._began = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._head_room = None
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_read += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._head_room = MAX_HEAD_BYTES  # a next request's head is counted afresh
        self._ended, self._began = True, False
        super().on_message_complete()

    def _refuse_head(self) -> None:
        _HEAD_REFUSALS.note()
        self._refuse(b"431 Request Header Fields Too Large", HEAD_TOO_LARGE)

    def send_400_response(self, msg: str) -> None:
        """A request httptools cannot parse (a negative ``Content-Length``, a broken request
        line): uvicorn answered it in plain text ("Invalid HTTP request received.")."""
        self._refuse(b"400 Bad Request", "invalid HTTP request: it cannot be parsed as HTTP/1.1")

    def _refuse(self, status: bytes, error: str) -> None:
        """``{"error": ...}`` with ``status``, then the connection closed: what was read of
        the request is no request to answer otherwise."""
        body = json.dumps({"error": error}).encode()
        self.transport.write(
            b"HTTP/1.1 %s\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, len(body), body)
        )
        self.transport.close()
