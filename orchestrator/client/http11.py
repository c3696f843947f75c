"""One HTTP/1.1 connection on a socket: the little of ``http.client`` the client uses.

The CLI starts a new interpreter for every command, and ``http.client`` imports the
``email`` package (to parse headers) and ``ssl`` (for the https class) whether they are
used or not: ~15 ms of a command that takes ~150 ms, paid on every keystroke, to parse
a dozen header lines from one known server. This module reads a status line, headers,
and a body framed as RFC 9112 says (none, ``Content-Length``, chunked, or up to the
close), and writes requests with their body streamed from a file when it is one. TLS is
a socket wrapped in a context the caller made, so ``ssl`` is imported by the caller, and
only for a ``--tls`` daemon.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, cast

if TYPE_CHECKING:
    import ssl

BLOCK = 1024 * 1024
"""Read buffer and upload chunk size: large bodies stream, never sit whole in memory."""
MAX_LINE = 65536
MAX_HEADERS = 100
"""http.client's bounds: a server that sends more is not a daemon this client speaks to."""
NO_BODY = {204, 304}


class Disconnected(ConnectionError):
    """The server closed the connection before answering: a kept-alive connection it had
    closed meanwhile (the caller may send again on a new one), or the server went away."""


class BadAnswer(Exception):
    """What came back is not HTTP/1.x, or its framing is broken (a cut body, a chunk
    size that is not hexadecimal): nothing of it can be trusted."""


class Response:
    """An answer whose body is read on demand; it frees its connection for the next
    request once the body is read to its end."""

    def __init__(self, conn: Connection, head: bool) -> None:
        self._conn = conn
        self.status, self.headers = _read_head(conn.reader)
        while 100 <= self.status < 200:  # "100 Continue" and the like: the answer follows
            self.status, self.headers = _read_head(conn.reader)
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self._chunk_left = 0  # bytes left in the current chunk; 0: a size line comes next
        self._left: int | None = None  # bytes left in the body; None: up to the close
        self.will_close = self.headers.get("connection", "").lower() == "close"
        if head or self.status in NO_BODY:
            self._chunked, self._left = False, 0
        elif not self._chunked:
            length = self.headers.get("content-length")
            if length is None:
                self.will_close = True
            elif not length.isdigit():
                raise BadAnswer(f"Content-Length is not a number: {length!r}")
            else:
                self._left = int(length)
        self._done = False
        self._end_if_complete()

    def getheader(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def isclosed(self) -> bool:
        """True once the body was read to its end (http.client's name for it)."""
        return self._done

    def read(self, amount: int | None = None) -> bytes:
        """The rest of the body, or at most ``amount`` bytes of it (b"" at its end)."""
        if self._done:
            return b""
        reader = self._conn.reader
        if self._chunked:
            data = self._read_chunked(amount)
        elif self._left is None:  # up to the close
            data = reader.read() if amount is None else reader.read1(amount)
            if amount is None or not data:
                self._left = 0
        else:
            want = self._left if amount is None else min(amount, self._left)
            data = reader.read(want)
            if len(data) < want:
                self._conn.close()
                raise BadAnswer(f"the body ended {want - len(data)} bytes early")
            self._left -= want
        self._end_if_complete()
        return data

    def _read_chunked(self, amount: int | None) -> bytes:
        reader, parts = self._conn.reader, []
        while amount is None or amount > 0:
            if self._chunk_left == 0:
                self._chunk_left = self._chunk_size()
                if self._chunk_left == 0:  # the last chunk
                    _skip_trailers(reader)
                    self._chunked, self._left = False, 0
                    break
            take = self._chunk_left if amount is None else min(amount, self._chunk_left)
            data = reader.read(take)
            if len(data) < take:
                self._conn.close()
                raise BadAnswer("the body ended inside a chunk")
            parts.append(data)
            self._chunk_left -= take
            if self._chunk_left == 0 and _read_line(reader):
                raise BadAnswer("a chunk longer than its size")
            if amount is not None:
                amount -= take
        return b"".join(parts)

    def _chunk_size(self) -> int:
        line = _read_line(self._conn.reader)
        try:
            return int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            self._conn.close()
            raise BadAnswer(f"not a chunk size: {line[:40]!r}") from None

    def _end_if_complete(self) -> None:
        if self._left == 0 and not self._done:
            self._done = True
            if self.will_close:
                self._conn.close()


class Connection:
    """One connection to ``host:port``, plain or through ``tls``, kept open for the
    next request until either side closes it."""

    def __init__(
        self, host: str, port: int, timeout: float, tls: ssl.SSLContext | None = None
    ) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:  # the handshake waits for the first request: see _handshake
                sock = tls.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
        except BaseException:
            sock.close()
            raise
        self.sock: socket.socket | None = sock
        self._handshaken = tls is None
        self.reader = cast(io.BufferedReader, sock.makefile("rb", buffering=BLOCK))
        self._host = host if port in (80, 443) else f"{host}:{port}"

    @property
    def closed(self) -> bool:
        return self.sock is None

    def settimeout(self, timeout: float) -> None:
        if self.sock is not None:
            self.sock.settimeout(timeout)

    def close(self) -> None:
        if self.sock is not None:
            self.reader.close()
            self.sock.close()
            self.sock = None

    def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes | IO[bytes] | None = None,
        patience: tuple[float, Callable[[], None]] | None = None,
    ) -> Response:
        """Send a request and read the answer's status and headers; its body is read from
        the returned ``Response``, before this connection can send again. ``patience``:
        (seconds, what to call once when no answer has begun by then)."""
        if self.sock is None:
            raise Disconnected("the connection is closed")
        if not self._handshaken:
            patience = self._handshake(patience)
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host}", "Accept-Encoding: identity"]
        if body is None and method in ("POST", "PUT", "PATCH"):
            headers = {**headers, "Content-Length": "0"}
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if body is None or isinstance(body, bytes):
            self.sock.sendall(head + body if body else head)
        else:
            self.sock.sendall(head)
            while block := body.read(BLOCK):
                self.sock.sendall(block)
        if patience is not None and not self._answering(patience[0]):
            patience[1]()
        return Response(self, head=method == "HEAD")

    def _handshake(
        self, patience: tuple[float, Callable[[], None]] | None
    ) -> tuple[float, Callable[[], None]] | None:
        """TLS's handshake, under the same patience as an answer: a frozen daemon's kernel
        still accepts the connection, and the handshake is then where the command waits
        (a minute, in silence, when it was done inside ``wrap_socket``). Returns the
        patience left for the answer (none once it was spent here)."""
        sock = cast("ssl.SSLSocket", self.sock)
        timeout = sock.gettimeout()
        if patience is not None and (timeout is None or timeout > patience[0]):
            sock.settimeout(patience[0])
            try:
                sock.do_handshake()
                self._handshaken = True
                return patience
            except TimeoutError:  # OpenSSL is left waiting to read: the call resumes it
                patience[1]()
                patience = None
            finally:
                sock.settimeout(timeout)
        sock.do_handshake()
        self._handshaken = True
        return patience

    def _answering(self, within: float) -> bool:
        """Whether the answer begins within ``within`` seconds (nothing is read: a request
        is only sent once the previous answer was read to its end, so bytes already
        buffered can only be TLS's)."""
        import select  # built in; only the commands that wait for a slow answer use it

        pending = getattr(self.sock, "pending", None)  # an SSLSocket's decrypted bytes
        if pending is not None and pending():
            return True
        return bool(select.select([cast(socket.socket, self.sock)], [], [], within)[0])


def _read_head(reader: IO[bytes]) -> tuple[int, dict[str, str]]:
    line = reader.readline(MAX_LINE + 1)
    if not line:
        raise Disconnected("the server closed the connection without answering")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise BadAnswer(f"not an HTTP/1.x status line: {line[:80]!r}")
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        field = _read_line(reader)
        if not field:
            return int(parts[1]), headers
        name, sep, value = field.decode("latin-1").partition(":")
        if not sep:
            raise BadAnswer(f"not a header line: {field[:80]!r}")
        key, value = name.strip().lower(), value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    raise BadAnswer(f"more than {MAX_HEADERS} header lines")


def _read_line(reader: IO[bytes]) -> bytes:
    """One line without its CRLF; a line longer than ``MAX_LINE`` or the stream's end
    in the middle of a head is a broken answer."""
    line = reader.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise BadAnswer("a line longer than 64 KiB")
    if not line.endswith(b"\n"):
        raise BadAnswer("the answer ended in the middle of its head")
    return line.rstrip(b"\r\n")


def _skip_trailers(reader: IO[bytes]) -> None:
    for _ in range(MAX_HEADERS + 1):
        if not _read_line(reader):
            return
    raise BadAnswer(f"more than {MAX_HEADERS} trailer lines")
