"""Switchback tests (``.../experiments/switchback``)."""

from __future__ import annotations

from typing import Any, cast

from orchestrator.client.apps import child
from orchestrator.client.transport import Transport
from orchestrator.client.types import SwitchbackRuns, SwitchbackSummary, SwitchbackTest


def _path(app_id: str, test_id: str | None = None, tail: str = "") -> str:
    return child(app_id, "experiments/switchback", test_id) + tail


class SwitchbackTests:
    def __init__(self, http: Transport) -> None:
        self._http = http

    def create(self, app_id: str, body: dict[str, Any]) -> SwitchbackTest:
        """``body``: id, name, description, comparison, generate_random_plan (the SDK's)."""
        answer = self._http.request("POST", _path(app_id), json_body=body)
        return cast(SwitchbackTest, answer.json())

    def list(self, app_id: str) -> list[SwitchbackTest]:
        answer = self._http.request("GET", _path(app_id)).json()
        return cast(list[SwitchbackTest], answer["items"])

    def get(self, app_id: str, test_id: str) -> SwitchbackTest:
        return cast(SwitchbackTest, self._http.request("GET", _path(app_id, test_id)).json())

    def runs(self, app_id: str, test_id: str) -> SwitchbackRuns:
        answer = self._http.request("GET", _path(app_id, test_id, "/runs"))
        return cast(SwitchbackRuns, answer.json())

    def summary(self, app_id: str, test_id: str) -> SwitchbackSummary:
        answer = self._http.request("GET", _path(app_id, test_id, "/summary"))
        return cast(SwitchbackSummary, answer.json())

    def start(self, app_id: str, test_id: str) -> SwitchbackTest:
        answer = self._http.request("PUT", _path(app_id, test_id, "/start"))
        return cast(SwitchbackTest, answer.json())

    def stop(self, app_id: str, test_id: str, intent: str) -> SwitchbackTest:
        body = {"intent": intent}
        answer = self._http.request("PUT", _path(app_id, test_id, "/stop"), json_body=body)
        return cast(SwitchbackTest, answer.json())

    def update(
        self, app_id: str, test_id: str, name: str | None, description: str | None
    ) -> SwitchbackTest:
        given = {"name": name, "description": description}
        body = {k: v for k, v in given.items() if v is not None}
        answer = self._http.request("PATCH", _path(app_id, test_id), json_body=body)
        return cast(SwitchbackTest, answer.json())

    def delete(self, app_id: str, test_id: str) -> None:
        self._http.request("DELETE", _path(app_id, test_id))
