"""Shadow tests (``.../experiments/shadow``)."""

from __future__ import annotations

import builtins
from typing import Any, cast

from orchestrator.client.apps import child
from orchestrator.client.transport import Transport
from orchestrator.client.types import ShadowRun, ShadowRuns, ShadowTest


def _path(app_id: str, test_id: str | None = None, action: str = "") -> str:
    return child(app_id, "experiments/shadow", test_id) + (f"/{action}" if action else "")


class ShadowTests:
    def __init__(self, http: Transport) -> None:
        self._http = http

    def create(self, app_id: str, body: dict[str, Any]) -> ShadowTest:
        """``body``: comparisons, termination_events, and optionally id, name, description,
        start_events (the SDK's ``new_shadow_test`` payload)."""
        answer = self._http.request("POST", _path(app_id), json_body=body)
        return cast(ShadowTest, answer.json())

    def list(self, app_id: str) -> list[ShadowTest]:
        return cast(list[ShadowTest], self._http.request("GET", _path(app_id)).json())

    def get(self, app_id: str, test_id: str) -> ShadowTest:
        return cast(ShadowTest, self._http.request("GET", _path(app_id, test_id)).json())

    def runs(self, app_id: str, test_id: str) -> builtins.list[ShadowRun]:
        """Baseline runs the test shadowed and their candidate runs, oldest first."""
        answer = self._http.request("GET", _path(app_id, test_id, "runs"))
        return cast(ShadowRuns, answer.json())["runs"]

    def update(
        self, app_id: str, test_id: str, name: str | None, description: str | None
    ) -> ShadowTest:
        given = {"name": name, "description": description}
        body = {k: v for k, v in given.items() if v is not None}
        answer = self._http.request("PATCH", _path(app_id, test_id), json_body=body)
        return cast(ShadowTest, answer.json())

    def start(self, app_id: str, test_id: str) -> ShadowTest:
        answer = self._http.request("PUT", _path(app_id, test_id, "start"))
        return cast(ShadowTest, answer.json())

    def stop(self, app_id: str, test_id: str, intent: str = "complete") -> ShadowTest:
        """``intent``: ``complete`` or ``cancel`` (which cancels its unfinished runs too)."""
        answer = self._http.request(
            "PUT", _path(app_id, test_id, "stop"), json_body={"intent": intent}
        )
        return cast(ShadowTest, answer.json())

    def delete(self, app_id: str, test_id: str) -> None:
        self._http.request("DELETE", _path(app_id, test_id))
