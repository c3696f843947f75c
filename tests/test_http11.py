"""The client's HTTP/1.1 connection against a socket server that answers scripted bytes:
each framing RFC 9112 allows, keep-alive, and every way an answer can be broken.

The daemon only ever sends a few of these shapes (uvicorn: Content-Length, or chunked
for a stream); the others are here because a parser that meets them must not hang or
return a wrong body."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.client import ClientError
from orchestrator.client.http11 import BadAnswer, Connection, Disconnected
from orchestrator.client.transport import Transport

CLOSE = b""
"""In a script: close the connection (after the answer before it, or instead of answering)."""


class Server:
    """Accepts connections one after another; each request gets the next scripted answer."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                self._talk(conn)

    def _talk(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        while self.answers:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = reader.readline()
                if not line:
                    return
                head += line
            length = next(
                (int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(
                    b"content-length:")),
                0,
            )  # fmt: skip
            request = head + reader.read(length)
            self.requests.append(request)
            answer = self.answers.pop(0)
            if answer == CLOSE:
                return
            conn.sendall(answer)
            if self.answers and self.answers[0] == CLOSE:
                self.answers.pop(0)
                return

    def close(self) -> None:
        self.sock.close()


Serve = Callable[..., Server]


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[Server] = []

    def start(*answers: bytes) -> Server:
        servers.append(Server(list(answers)))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def connect(server: Server) -> Connection:
    return Connection("127.0.0.1", server.port, timeout=5)


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4;ext=1\r\nwiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\n"
)


def test_a_kept_alive_connection_carries_requests_one_after_another(serve: Serve) -> None:
    server = serve(OK, OK)
    conn = connect(server)
    for _ in range(2):
        answer = conn.request("GET", "/v1/x", {"Authorization": "Bearer k"})
        assert (answer.status, answer.read(), answer.isclosed()) == (200, b"hello", True)
        assert answer.getheader("content-type") == answer.getheader("Content-Type") == "text/plain"
    assert server.connections == 1 and not conn.closed
    first = server.requests[0].decode()
    assert first.startswith(f"GET /v1/x HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n")
    assert "Authorization: Bearer k\r\n" in first


@pytest.mark.parametrize("amount", [None, 1, 3, 100])
def test_a_chunked_body_is_read_whole_or_in_pieces(serve: Serve, amount: int | None) -> None:
    conn = connect(serve(CHUNKED, OK))
    answer = conn.request("GET", "/", {})
    pieces = list(iter(lambda: answer.read(amount), b""))
    assert b"".join(pieces) == b"wikipedia in\r\n\r\nchunks."
    assert amount is None or all(len(p) <= amount for p in pieces)
    assert answer.isclosed()
    assert conn.request("GET", "/", {}).read() == b"hello"  # the trailers were consumed


def test_a_body_without_length_ends_with_the_connection(serve: Serve) -> None:
    conn = connect(serve(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", CLOSE))
    answer = conn.request("GET", "/", {})
    assert answer.read(5) == b"until"
    assert answer.read() == b" the end" and answer.isclosed() and conn.closed


def test_connection_close_closes_once_the_body_is_read(serve: Serve) -> None:
    conn = connect(serve(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"))
    answer = conn.request("GET", "/", {})
    assert not conn.closed
    assert answer.read() == b"ok" and conn.closed


def test_answers_without_a_body(serve: Serve) -> None:
    server = serve(
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",  # HEAD: the length of a GET's body
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
    )
    conn = connect(server)
    assert conn.request("DELETE", "/", {}).isclosed()
    head = conn.request("HEAD", "/", {})
    assert (head.status, head.read(), head.isclosed()) == (200, b"", True)
    created = conn.request("POST", "/", {})
    assert (created.status, created.read()) == (201, b"")
    assert b"Content-Length: 0\r\n" in server.requests[2]  # a POST without a body says so


def test_a_body_streams_from_a_file(serve: Serve, tmp_path: Path) -> None:
    server = serve(OK)
    data = bytes(range(256)) * 5000
    (tmp_path / "up").write_bytes(data)
    with (tmp_path / "up").open("rb") as body:
        answer = connect(server).request("PUT", "/u", {"Content-Length": str(len(data))}, body)
    assert answer.read() == b"hello"
    assert server.requests[0].endswith(b"\r\n\r\n" + data)


def test_a_connection_closed_before_answering_is_disconnected(serve: Serve) -> None:
    conn = connect(serve(CLOSE))
    with pytest.raises(Disconnected):
        conn.request("GET", "/", {})


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "not a header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length is not a number"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", "more than 100 header lines"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000 + b"\r\n\r\n", "longer than 64 KiB"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "ended 5 bytes early"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "not a chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", "longer than"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc", "inside a chunk"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "in the middle of its head"),
    ],
)
def test_a_broken_answer_is_an_error_not_a_body(serve: Serve, answer: bytes, message: str) -> None:
    conn = connect(serve(answer, CLOSE))
    with pytest.raises(BadAnswer, match=message):
        conn.request("GET", "/", {}).read()


def test_the_transport_names_a_broken_answer_and_connects_again(serve: Serve) -> None:
    server = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}", CLOSE, OK)
    http = Transport(f"http://127.0.0.1:{server.port}", api_key="k")
    with pytest.raises(ClientError, match=r"answered in broken HTTP: the body ended 7 bytes"):
        http.request("GET", "/v1/a")
    assert http.request("GET", "/v1/b").body == b"hello"
    assert server.connections == 2


def test_streamed_downloads_read_in_blocks(serve: Serve) -> None:
    server = serve(CHUNKED)
    http = Transport(f"http://127.0.0.1:{server.port}", api_key="k")
    with http.stream("/v1/out") as chunks:
        out = io.BytesIO()
        for chunk in chunks:
            out.write(chunk)
    assert out.getvalue() == b"wikipedia in\r\n\r\nchunks."
