"""ID rules and generators.

App, version, instance, input-set and experiment IDs follow the Nextmv rule;
run IDs are generated here and sort by creation time.
"""

from __future__ import annotations

import os
import re
import time
from typing import Protocol

from orchestrator.errors import Invalid

_ALLOWED = re.compile(r"[a-z0-9.-]*")
"""Used with ``fullmatch``: ``$`` also matches before a final newline (``"dupe\n"``)."""
_MIN_LEN, _MAX_LEN = 3, 30
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase


_CHILD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")


def validate_child_id(value: str, kind: str) -> str:
    """IDs inside an app (versions, instances, input sets...): URL-safe, 1-64 characters.

    Looser than the app rule because the SDK's own examples use IDs like ``v1``.
    """
    if not isinstance(value, str) or value == "":
        raise Invalid(f"{kind} ID is required")
    if not _CHILD.fullmatch(value):
        raise Invalid(
            f"{kind} ID {value!r} must be 1-64 characters of letters, digits, '.', '-' or '_', "
            "not starting with '.' or '-'"
        )
    return value


def validate_id(value: str, kind: str = "app") -> str:
    """Return ``value`` if it is a valid app ID, else raise ``Invalid`` naming the broken rule."""
    if not isinstance(value, str) or value == "":
        raise Invalid(f"{kind} ID is required")
    if not _MIN_LEN <= len(value) <= _MAX_LEN:
        raise Invalid(
            f"{kind} ID {value!r} must be between {_MIN_LEN} and {_MAX_LEN} characters "
            f"(it has {len(value)})"
        )
    if not _ALLOWED.fullmatch(value):
        bad = ", ".join(repr(c) for c in dict.fromkeys(value) if not _ALLOWED.fullmatch(c))
        raise Invalid(
            f"{kind} ID {value!r} may only contain lowercase letters, numbers, periods "
            f"or hyphens (not {bad})"
        )
    if value[0] in ".-" or value[-1] in ".-":
        raise Invalid(f"{kind} ID {value!r} cannot start or end with a hyphen or period")
    return value


MAX_NAME_LENGTH = 256
MAX_DESCRIPTION_LENGTH = 4096
"""Names and descriptions are for people: capped, so that a list stays a list (a 50 MB
name once made ``orch app list`` take 7 s)."""


def check_label(kind: str, name: str | None = None, description: str | None = None) -> None:
    """Refuse a name or description over its cap, saying which and by how much."""
    for what, value, cap in (
        ("name", name, MAX_NAME_LENGTH),
        ("description", description, MAX_DESCRIPTION_LENGTH),
    ):
        if value is not None and len(value) > cap:
            raise Invalid(f"{kind} {what} has {len(value)} characters; the limit is {cap}")


class Labelled(Protocol):
    name: str
    description: str


def relabel(kind: str, item: Labelled, name: str | None, description: str | None) -> None:
    """Apply an update's name and description: the SDK PUTs whole objects back, so a
    missing or blank name keeps the current one, and a missing description too."""
    check_label(kind, name, description)
    item.name = name or item.name
    item.description = item.description if description is None else description


def _encode(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rem = divmod(number, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A time-sortable, collision-resistant ID: ``<prefix>-<10 time chars><6 random chars>``."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(4), "big")
    return f"{prefix}-{_encode(millis, 10)}{_encode(rand, 6)}"


def new_token() -> str:
    """An unguessable secret for keys and single-use upload URLs."""
    return os.urandom(24).hex()
