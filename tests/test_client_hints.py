"""What the client says when a connection closes under a request it cannot send again
(an upload; in-process, against real sockets): a daemon that went away is named as
stopped (it used to get the --tls hint); one that still listens but closes every
plain-http connection is probably a ``--tls`` daemon."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from orchestrator.client import ClientError
from orchestrator.client.transport import Transport


def _closing_server(keep_listening: bool) -> tuple[socket.socket, threading.Thread]:
    """Accepts one connection, reads the request, closes it without an answer; then
    either keeps listening (closing every later one) or stops listening at once."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)  # so the thread sees the socket closed at the test's end

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.recv(65536)
            conn.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            if not keep_listening:
                server.close()  # the daemon is gone: its port refuses from now on
            conn.close()  # a reset, as a killed process's socket gives
            if not keep_listening:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


@pytest.mark.parametrize(
    ("keep_listening", "says", "never"),
    [
        (False, "the daemon stopped: see orch daemon status", "--tls"),
        (True, "a --tls daemon answers on https://", "stopped"),
    ],
)
def test_a_closed_connection_is_explained_by_what_listens_now(
    keep_listening: bool, says: str, never: str, tmp_path: Path
) -> None:
    server, thread = _closing_server(keep_listening)
    port = server.getsockname()[1]
    try:
        with pytest.raises(ClientError) as caught:
            # a streamed body (an upload) cannot be sent again: the first failure is final
            (tmp_path / "input").write_bytes(b"x" * 1000)
            with (tmp_path / "input").open("rb") as upload:
                client = Transport(f"http://127.0.0.1:{port}", "key")
                client.request("PUT", "/uploads/t", body=upload)
    finally:
        server.close()
        thread.join(5)
    assert says in str(caught.value) and never not in str(caught.value)
