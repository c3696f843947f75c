"""Secrets collections of an app. Values go to the daemon and never come back: reads
show each secret's type and location, with its value masked."""

from __future__ import annotations

import builtins
from typing import Any, cast

from orchestrator.client.apps import child
from orchestrator.client.transport import Transport
from orchestrator.client.types import (
    SecretsCollection,
    SecretsCollectionSummary,
    SecretsPage,
)


class Secrets:
    def __init__(self, http: Transport) -> None:
        self._http = http

    def create(
        self,
        app_id: str,
        collection_id: str | None,
        name: str | None,
        description: str,
        secrets: list[dict[str, str]],
    ) -> SecretsCollectionSummary:
        """``secrets``: ``{"type": "env"|"file", "location": ..., "value": ...}`` each."""
        body: dict[str, Any] = {"secrets": secrets, "description": description}
        if collection_id:
            body["id"] = collection_id
        if name:
            body["name"] = name
        answer = self._http.request("POST", child(app_id, "secrets"), json_body=body)
        return cast(SecretsCollectionSummary, answer.json())

    def list(self, app_id: str) -> list[SecretsCollectionSummary]:
        page = cast(SecretsPage, self._http.request("GET", child(app_id, "secrets")).json())
        return page["items"]

    def get(self, app_id: str, collection_id: str) -> SecretsCollection:
        answer = self._http.request("GET", child(app_id, "secrets", collection_id))
        return cast(SecretsCollection, answer.json())

    def update(
        self,
        app_id: str,
        collection_id: str,
        name: str | None = None,
        description: str | None = None,
        operations: builtins.list[dict[str, str]] | None = None,
    ) -> SecretsCollectionSummary:
        """The SDK's PATCH: ``operations`` are ``{"op": "create"|"update"|"delete", "type",
        "location", "value"?}``, applied all or none."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if description is not None:
            body["description"] = description
        if operations:
            body["operations"] = operations
        answer = self._http.request(
            "PATCH", child(app_id, "secrets", collection_id), json_body=body
        )
        return cast(SecretsCollectionSummary, answer.json())

    def delete(self, app_id: str, collection_id: str) -> None:
        self._http.request("DELETE", child(app_id, "secrets", collection_id))
