"""Secrets collections → the JSON of the SDK's ``SecretsCollectionSummary`` and
``SecretsCollection``. The SDK requires a ``value`` on every secret; it gets a mask,
never the stored value."""

from __future__ import annotations

from typing import Any

from orchestrator.models import SecretsCollection, SecretType

MASK = "********"


def summary(c: SecretsCollection) -> dict[str, Any]:
    return {
        "id": c.id,
        "application_id": c.app_id,
        "name": c.name,
        "description": c.description,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }


def collection(c: SecretsCollection, keys: list[tuple[SecretType, str]]) -> dict[str, Any]:
    secrets = [{"type": kind.value, "location": location, "value": MASK} for kind, location in keys]
    return summary(c) | {"secrets": secrets}
