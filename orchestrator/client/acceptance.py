"""Acceptance tests (``.../experiments/acceptance``)."""

from __future__ import annotations

from typing import Any, cast

from orchestrator.client.apps import child
from orchestrator.client.transport import Transport
from orchestrator.client.types import AcceptanceTest


def _path(app_id: str, test_id: str | None = None) -> str:
    return child(app_id, "experiments/acceptance", test_id)


class AcceptanceTests:
    def __init__(self, http: Transport) -> None:
        self._http = http

    def create(self, app_id: str, body: dict[str, Any]) -> AcceptanceTest:
        """``body``: id (the batch experiment's), control, candidate, metrics, name..."""
        answer = self._http.request("POST", _path(app_id), json_body=body)
        return cast(AcceptanceTest, answer.json())

    def get(self, app_id: str, test_id: str) -> AcceptanceTest:
        return cast(AcceptanceTest, self._http.request("GET", _path(app_id, test_id)).json())

    def list(self, app_id: str) -> list[AcceptanceTest]:
        return cast(list[AcceptanceTest], self._http.request("GET", _path(app_id)).json())

    def update(
        self, app_id: str, test_id: str, name: str | None, description: str | None
    ) -> AcceptanceTest:
        given = {"name": name, "description": description}
        body = {k: v for k, v in given.items() if v is not None}
        answer = self._http.request("PATCH", _path(app_id, test_id), json_body=body)
        return cast(AcceptanceTest, answer.json())

    def delete(self, app_id: str, test_id: str) -> None:
        self._http.request("DELETE", _path(app_id, test_id))
