"""HTTP to the daemon: one keep-alive connection, JSON in and out.

The CLI starts a new interpreter for every command, so what it imports is paid on
every keystroke: httpx costs ~0.2 s, ``http.client`` ~15 ms, ``http11`` (a socket and a
head parser) ~2 ms. The daemon speaks HTTP/1.1 on loopback, plain or (``--tls``) over
TLS verified with orch's own CA, which is all this needs. Every non-2xx answer becomes
a ``ClientError`` carrying the daemon's own message; redirects are never followed.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlencode, urlsplit

from orchestrator.client.http11 import BLOCK, BadAnswer, Connection, Disconnected
from orchestrator.client.http11 import Response as Answer

if TYPE_CHECKING:
    import ssl

Params = Mapping[str, str | int | float | bool | None]
SLOW_AFTER = 5.0
"""Seconds without an answer after which ``on_slow`` is called: a request that waits on
purpose (a long poll, an upload) gives its own timeout and is not counted."""
_RETRYABLE = (Disconnected, ConnectionResetError, BrokenPipeError)


class ClientError(Exception):
    """A failed call: the daemon's message, and its HTTP status when it answered at all."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.status = message, status


class Response(NamedTuple):
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class Transport:
    """Requests to one daemon over one reused connection (reopened once if it went stale)."""

    def __init__(
        self, url: str, api_key: str, timeout: float = 60.0, ca_file: str | None = None
    ) -> None:
        """``ca_file``: the CA an https daemon's certificate must chain to (orch's own);
        None trusts the system's CAs."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientError(f"not an http(s) URL: {url!r}")
        self.url = url.rstrip("/")
        self._scheme, self._host = parts.scheme, parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self._timeout = timeout
        self._conn: Connection | None = None
        self._ca_file = ca_file
        self._tls: ssl.SSLContext | None = None
        self.on_slow: Callable[[], None] | None = None
        """Called when a request with the default timeout has had no answer for
        ``SLOW_AFTER`` seconds (a frozen daemon): the CLI says it is still waiting."""

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json_body: Any = None,
        body: bytes | IO[bytes] | None = None,
        timeout: float | None = None,
    ) -> Response:
        """``path`` is on the daemon (``/v1/...``) or an absolute URL on it (upload URLs)."""
        with self._exchange(method, path, params, json_body, body, timeout) as response:
            data = response.read()
            return Response(response.status, data, response.getheader("Content-Type") or "")

    @contextmanager
    def stream(
        self, path: str, params: Params | None = None, timeout: float | None = None
    ) -> Iterator[Iterator[bytes]]:
        """GET a body in chunks (outputs and reports may be large)."""
        with self._exchange("GET", path, params, None, None, timeout) as response:
            yield iter(lambda: response.read(BLOCK), b"")

    @contextmanager
    def _exchange(
        self,
        method: str,
        path: str,
        params: Params | None,
        json_body: Any,
        body: bytes | IO[bytes] | None,
        timeout: float | None,
    ) -> Iterator[Answer]:
        target, headers = self._target(path, params)
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        if body is not None:
            size = len(body) if isinstance(body, bytes) else os.fstat(body.fileno()).st_size
            headers["Content-Length"] = str(size)
        response = self._send(method, target, headers, body, timeout)
        try:
            if response.status >= 400:
                raise ClientError(_message(response.status, response.read()), response.status)
            if response.status >= 300:  # never followed: each URL here is the daemon's own
                response.read()
                raise ClientError(_redirect(method, target, response), response.status)
            yield response
        except TimeoutError:
            self.close()
            raise ClientError(f"the daemon at {self.url} did not answer in time") from None
        except BadAnswer as exc:
            self.close()
            raise ClientError(f"the daemon at {self.url} answered in broken HTTP: {exc}") from None
        finally:
            if not response.isclosed():
                self.close()  # a body left unread: the connection cannot be reused

    def _target(self, path: str, params: Params | None) -> tuple[str, dict[str, str]]:
        """The request target and headers; the key goes to the daemon's own /v1 routes only
        (upload and download URLs carry their own secret, as the SDK expects)."""
        parts = urlsplit(path)
        if parts.netloc and (parts.hostname, parts.port) != (self._host, self._port):
            raise ClientError(f"{path} is not on the daemon at {self.url}")
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        given = {k: _text(v) for k, v in (params or {}).items() if v is not None}
        if given:
            target += ("&" if "?" in target else "?") + urlencode(given)
        headers = dict(self._auth) if parts.path.startswith("/v1/") else {}
        return target, headers

    def _send(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes | IO[bytes] | None,
        timeout: float | None,
    ) -> Answer:
        rewindable = body is None or isinstance(body, bytes)
        for attempt in (1, 2):  # a keep-alive connection the daemon closed: reconnect once
            try:
                patience = (SLOW_AFTER, self.on_slow) if self.on_slow and not timeout else None
                return self._connection(timeout or self._timeout).request(
                    method, target, headers, body, patience
                )
            except BadAnswer as exc:
                self.close()
                raise ClientError(
                    f"the daemon at {self.url} answered in broken HTTP: {exc}"
                ) from None
            except _RETRYABLE as exc:
                self.close()
                if attempt == 2 or not rewindable:
                    raise ClientError(
                        f"cannot reach the daemon at {self.url}: {exc}{self._hint()}"
                    ) from None
            except TimeoutError:
                self.close()
                raise ClientError(f"the daemon at {self.url} did not answer in time") from None
            except OSError as exc:
                self.close()
                if (tls := self._tls_failure(exc)) is not None:
                    raise ClientError(tls) from None
                reason = exc.strerror or str(exc)
                if isinstance(exc, ConnectionRefusedError):
                    reason += " (the daemon is not running: see orch daemon status)"
                raise ClientError(f"cannot reach the daemon at {self.url}: {reason}") from None
        raise AssertionError("unreachable")

    def _tls_failure(self, exc: OSError) -> str | None:
        """What a failed TLS handshake means here, in words (``ssl``'s own are
        ``[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)``): the URL (an
        ``ORCH_URL`` exported earlier) names a daemon that now serves plain http, or one
        whose certificate this home's CA did not sign (another home's daemon)."""
        if self._scheme != "https":
            return None
        import ssl  # imported already: the connection was made with it

        if isinstance(exc, ssl.SSLCertVerificationError):
            return (
                f"cannot trust the daemon at {self.url}: {exc.verify_message} (it is not this "
                "home's daemon, or its CA is not this home's; orch daemon env prints this "
                "home's URL)"
            )
        if isinstance(exc, ssl.SSLError):
            return (
                f"the daemon at {self.url} does not speak TLS ({exc.reason}): it was started "
                "without --tls; orch daemon env prints its URL now, or start it with --tls"
            )
        return None

    def _hint(self) -> str:
        """Why a connection was closed under a request: the daemon went away (its port
        refuses a new connection: it was stopped or killed), or, when it still listens, a
        plain-http request reached a ``--tls`` daemon, which shows only a closed connection."""
        try:
            socket.create_connection((self._host, self._port), timeout=1).close()
        except OSError:
            return " (the daemon stopped: see orch daemon status)"
        if self._scheme == "http":
            return f" (a --tls daemon answers on https://{self._host}:{self._port} only)"
        return ""

    def _connection(self, timeout: float) -> Connection:
        if self._conn is not None and self._conn.closed:
            self._conn = None  # the answer said "Connection: close"
        if self._conn is None:
            tls = self._context() if self._scheme == "https" else None
            self._conn = Connection(self._host, self._port, timeout, tls)
        self._conn.settimeout(timeout)
        return self._conn

    def _context(self) -> ssl.SSLContext:
        """Made once per client: loading CAs costs more than a loopback request. ``ssl`` is
        imported here, by the commands that talk to a ``--tls`` daemon only."""
        if self._tls is None:
            import ssl

            self._tls = ssl.create_default_context(cafile=self._ca_file)
        return self._tls


def _text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _redirect(method: str, target: str, response: Answer) -> str:
    """A redirect means the URL was not one of the API's: the client built it wrong (an
    empty ID turns ``/v1/applications/ID`` into the collection's URL), so it must fail
    rather than count as done: a DELETE answered 307 deleted nothing."""
    where = response.getheader("Location")
    moved = f" (to {where})" if where else ""
    return f"the daemon answered {method} {target} with HTTP {response.status}{moved}"


def _message(status: int, body: bytes) -> str:
    """The daemon's ``{"error": "..."}``, or the start of whatever else came back."""
    try:
        data = json.loads(body)
    except ValueError:
        return f"HTTP {status}: {body[:500].decode(errors='replace')}"
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])
    return f"HTTP {status}: {data}"
