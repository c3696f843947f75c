"""A cap on JSON request bodies, checked before anything is read.

Bulk bytes travel through upload URLs, which stream to disk; a JSON body is
parsed in memory, so a client that inlines a huge input gets a 413 that says
where to send it instead of growing the daemon. Checked before routing by
``api/gate.py`` (and the hot routes, ``api/hot_path.py``) on the announced
``Content-Length``; a body without one (chunked) is counted as it arrives
(``api/bodies.py``).
"""

from __future__ import annotations

from orchestrator.errors import TooLarge

MAX_JSON_BYTES = 64 * 1024 * 1024

UPLOADS = "/uploads/"
"""Upload URLs stream to disk: no cap (the disk gate still applies)."""


def body_refusal(
    path: str, announced: int, limit: int = MAX_JSON_BYTES, upload_limit: int | None = None
) -> TooLarge | None:
    """The 413 for a body announced over its cap: ``limit`` for JSON, ``upload_limit`` (the
    larger of the package and input caps; the URL's kind is only known once its slot is
    read) for an upload URL."""
    if not capped(path):
        if upload_limit is None or announced <= upload_limit:
            return None
        return TooLarge(
            f"upload exceeds the limit of {upload_limit // (1024 * 1024)} MiB"
            " (max_upload_mb, max_package_mb)"
        )
    return too_large(limit, path) if announced > limit else None


def capped(path: str) -> bool:
    return not path.startswith(UPLOADS)


def too_large(limit: int, path: str) -> TooLarge:
    """The 413; where the body is a run's, it says how to send a large input instead."""
    message = f"request body over {limit // (1024 * 1024)} MiB"
    if path.rstrip("/").endswith("/runs"):
        message += ": send large inputs through an upload URL (POST .../runs/uploadurl)"
    return TooLarge(message)
