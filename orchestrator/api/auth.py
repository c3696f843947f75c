"""Bearer-key authentication and signed download URLs.

The key lives in ``<home>/api-key`` (mode 0600). Upload and download URLs
carry their own secret instead, because the SDK sends no key to them.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator.api.errors import error_response
from orchestrator.errors import Unauthorized

V1 = "/v1/"


class BearerGate:
    """Every ``/v1`` request needs the daemon's key, checked before routing.

    One gate in front of the router covers every route, including ones added
    later, and costs no dependency to solve per request (the hot path is a few
    requests per run). Unknown ``/v1`` paths answer 401 too: without the key,
    nothing says which routes exist.
    """

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app, self.key = app, key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(V1):
            refused = self._refusal(scope)
            if refused is not None:
                await error_response(refused.status, refused.message)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> Unauthorized | None:
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            return Unauthorized(
                "missing bearer key: send 'Authorization: Bearer <key>' (see orch daemon status)"
            )
        if not hmac.compare_digest(token.strip(), self.key):
            return Unauthorized("invalid bearer key")
        return None


def sign(key: str, path: str, ttl_seconds: int) -> str:
    """Query string that makes ``path`` downloadable without the key until it expires."""
    expires = int(time.time()) + ttl_seconds
    return f"expires={expires}&sig={_mac(key, path, expires)}"


def verify(key: str, path: str, expires: int, sig: str) -> None:
    if expires < time.time():
        raise Unauthorized("this download URL has expired; ask for a new one")
    # bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500)
    if not hmac.compare_digest(sig.encode(), _mac(key, path, expires).encode()):
        raise Unauthorized("invalid download URL signature")


def _mac(key: str, path: str, expires: int) -> str:
    return hmac.new(key.encode(), f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()
