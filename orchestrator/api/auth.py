"""Bearer-key authentication and signed download URLs.

The key lives in ``<home>/api-key`` (mode 0600). Upload and download URLs
carry their own secret instead, because the SDK sends no key to them.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from fastapi import Request

from orchestrator.errors import Unauthorized


async def check_bearer(request: Request) -> None:
    """FastAPI dependency guarding every ``/v1`` route.

    ``async`` on purpose: FastAPI runs plain ``def`` dependencies in a thread
    pool, a hop per request for a check that takes microseconds.
    """
    expected: str = request.app.state.api_key
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(
            "missing bearer key: send 'Authorization: Bearer <key>' (see orch daemon status)"
        )
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise Unauthorized("invalid bearer key")


def sign(key: str, path: str, ttl_seconds: int) -> str:
    """Query string that makes ``path`` downloadable without the key until it expires."""
    expires = int(time.time()) + ttl_seconds
    return f"expires={expires}&sig={_mac(key, path, expires)}"


def verify(key: str, path: str, expires: int, sig: str) -> None:
    if expires < time.time():
        raise Unauthorized("this download URL has expired; ask for a new one")
    if not hmac.compare_digest(sig, _mac(key, path, expires)):
        raise Unauthorized("invalid download URL signature")


def _mac(key: str, path: str, expires: int) -> str:
    return hmac.new(key.encode(), f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()
