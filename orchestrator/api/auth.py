"""Bearer-key authentication and signed download URLs.

The key lives in ``<home>/api-key`` (mode 0600). Upload and download URLs
carry their own secret instead, because the SDK sends no key to them.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from orchestrator.errors import Unauthorized

V1 = "/v1/"


def bearer_refusal(authorization: bytes | None, key: bytes) -> Unauthorized | None:
    """Why a ``/v1`` request with this ``Authorization`` header is refused, or None.

    Every ``/v1`` request needs the daemon's key, checked before routing (``api/gate.py``
    for the stack, ``api/hot_path.py`` for the two requests of every run): one check in
    front of the router covers every route, including ones added later, and costs no
    dependency to solve per request. Unknown ``/v1`` paths answer 401 too: without the
    key, nothing says which routes exist.
    """
    scheme, _, token = (authorization or b"").partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        return Unauthorized(
            "missing bearer key: send 'Authorization: Bearer <key>' (see orch daemon status)"
        )
    if not hmac.compare_digest(token.strip(), key):
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
