"""Ensemble definitions (``.../ensembles``) and what an ensemble run chose (``.../ensemble``)."""

from __future__ import annotations

from typing import Any, cast

from orchestrator.client.apps import child
from orchestrator.client.runs import run_path
from orchestrator.client.transport import Transport
from orchestrator.client.types import EnsembleDefinition, EnsembleResult


def _path(app_id: str, definition_id: str | None = None) -> str:
    return child(app_id, "ensembles", definition_id)


class Ensembles:
    def __init__(self, http: Transport) -> None:
        self._http = http

    def create(self, app_id: str, body: dict[str, Any]) -> EnsembleDefinition:
        """``body``: the SDK's definition (id, name, description, run_groups, rules)."""
        answer = self._http.request("POST", _path(app_id), json_body=body)
        return cast(EnsembleDefinition, answer.json())

    def list(self, app_id: str) -> list[EnsembleDefinition]:
        """Every definition of the app (the daemon answers one page holding them all)."""
        page = self._http.request("GET", _path(app_id)).json()
        return cast(list[EnsembleDefinition], page["items"])

    def get(self, app_id: str, definition_id: str) -> EnsembleDefinition:
        answer = self._http.request("GET", _path(app_id, definition_id))
        return cast(EnsembleDefinition, answer.json())

    def update(
        self, app_id: str, definition_id: str, name: str | None, description: str | None
    ) -> EnsembleDefinition:
        given = {"name": name, "description": description}
        body = {k: v for k, v in given.items() if v is not None}
        answer = self._http.request("PATCH", _path(app_id, definition_id), json_body=body)
        return cast(EnsembleDefinition, answer.json())

    def delete(self, app_id: str, definition_id: str) -> None:
        """Runs made from the definition keep their own copy of it."""
        self._http.request("DELETE", _path(app_id, definition_id))

    def result(self, app_id: str, run_id: str) -> EnsembleResult:
        """The children of an ensemble run, the values its rules read, and the winner."""
        answer = self._http.request("GET", run_path(app_id, run_id, "/ensemble"))
        return cast(EnsembleResult, answer.json())
