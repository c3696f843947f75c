"""The typed HTTP client of the daemon, used by the CLI and the tests.

It finds the daemon the way the CLI documents: ``ORCH_URL`` + ``ORCH_API_KEY``
when set, else ``daemon.json`` and ``api-key`` in the home. Every non-2xx
answer becomes a ``ClientError`` carrying the daemon's own message.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from orchestrator.home import Home
from orchestrator.lifecycle import DaemonInfo


class ClientError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def discover(home: Home) -> tuple[str, str]:
    """(url, key) of the daemon to talk to."""
    url, key = os.environ.get("ORCH_URL"), os.environ.get("ORCH_API_KEY")
    if url and key:
        return url.rstrip("/"), key
    info = DaemonInfo.read(home)
    if info is None:
        raise ClientError(
            f"no orch daemon is running for {home.root}; start one with: orch daemon start"
        )
    try:
        key = key or home.api_key_file.read_text().strip()
    except OSError as exc:
        raise ClientError(f"cannot read the API key in {home.api_key_file}: {exc}") from None
    return (url or info.url).rstrip("/"), key


class OrchClient:
    def __init__(self, url: str, api_key: str, timeout: float = 60.0) -> None:
        self.url = url
        self._http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout
        )

    @classmethod
    def for_home(cls, home: Home) -> OrchClient:
        return cls(*discover(home))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OrchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ClientError(f"the daemon at {self.url} did not answer in time") from None
        except httpx.TransportError as exc:
            raise ClientError(f"cannot reach the daemon at {self.url}: {exc}") from None
        if response.is_error:
            raise ClientError(_message(response), response.status_code)
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return _json_or_none(self.request("POST", path, json=body, **kwargs))

    def put(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return _json_or_none(self.request("PUT", path, json=body, **kwargs))

    def patch(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return _json_or_none(self.request("PATCH", path, json=body, **kwargs))

    def delete(self, path: str, **kwargs: Any) -> None:
        self.request("DELETE", path, **kwargs)

    def upload(self, url: str, path: Path) -> Any:
        """PUT a file to an upload URL (no key: the URL is the secret), streamed from disk."""
        with path.open("rb") as fh:
            response = httpx.put(url, content=_chunks(fh), timeout=None)
        if response.is_error:
            raise ClientError(_message(response), response.status_code)
        return response.json()

    def download(self, path: str, sink: BinaryIO, params: dict[str, Any] | None = None) -> bytes:
        """Stream a response body into ``sink``; returns its last bytes (to check for a newline).

        ``params`` are only sent when given: httpx would otherwise replace the
        query string of a signed URL.
        """
        tail = b""
        with self._http.stream("GET", path, params=params or None) as response:
            if response.is_error:
                response.read()
                raise ClientError(_message(response), response.status_code)
            for chunk in response.iter_bytes():
                sink.write(chunk)
                tail = chunk[-1:] or tail
        return tail


def _chunks(fh: Any, size: int = 1024 * 1024) -> Iterator[bytes]:
    while chunk := fh.read(size):
        yield chunk


def _json_or_none(response: httpx.Response) -> Any:
    return response.json() if response.content else None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:500]}"
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return f"HTTP {response.status_code}: {body}"
