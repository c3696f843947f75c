"""Managed inputs, input sets and batch experiments."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from orchestrator.client.apps import child
from orchestrator.client.runs import Runs, Sink, download
from orchestrator.client.transport import Transport
from orchestrator.client.types import (
    Experiment,
    ExperimentMetadata,
    ExperimentRuns,
    Gate,
    InputSet,
    ManagedInput,
    Summary,
)


class Inputs:
    """Inputs the daemon keeps by content hash, for input sets."""

    def __init__(self, http: Transport, runs: Runs) -> None:
        self._http, self._runs = http, runs

    def keep_file(self, app_id: str, source: Path, fmt: str) -> ManagedInput:
        """The SDK's way: an upload URL, the bytes, then an input made from the upload."""
        upload_id = self._runs.upload(app_id, source)
        body = {"name": source.name, "upload_id": upload_id, "format": {"input": {"type": fmt}}}
        answer = self._http.request("POST", child(app_id, "inputs"), json_body=body)
        return cast(ManagedInput, answer.json())

    def delete(self, app_id: str, input_id: str) -> None:
        self._http.request("DELETE", child(app_id, "inputs", input_id))


def _sets(app_id: str, set_id: str | None = None) -> str:
    return child(app_id, "experiments/inputsets", set_id)


class InputSets:
    def __init__(self, http: Transport) -> None:
        self._http = http

    def create(self, app_id: str, body: dict[str, Any]) -> InputSet:
        """``body``: id, name, description and one source (input_ids, run_ids, instance_id)."""
        return cast(InputSet, self._http.request("POST", _sets(app_id), json_body=body).json())

    def list(self, app_id: str) -> list[InputSet]:
        return cast(list[InputSet], self._http.request("GET", _sets(app_id)).json())

    def get(self, app_id: str, set_id: str) -> InputSet:
        return cast(InputSet, self._http.request("GET", _sets(app_id, set_id)).json())

    def update(
        self, app_id: str, set_id: str, name: str | None, description: str | None
    ) -> InputSet:
        given = {"name": name, "description": description}
        body = {k: v for k, v in given.items() if v is not None}
        answer = self._http.request("PUT", _sets(app_id, set_id), json_body=body)
        return cast(InputSet, answer.json())

    def delete(self, app_id: str, set_id: str) -> None:
        self._http.request("DELETE", _sets(app_id, set_id))


def _batch(app_id: str, exp_id: str | None = None, tail: str = "") -> str:
    return child(app_id, "experiments/batch", exp_id) + tail


class Batches:
    def __init__(self, http: Transport) -> None:
        self._http = http

    def start(self, app_id: str, body: dict[str, Any]) -> Experiment:
        return cast(Experiment, self._http.request("POST", _batch(app_id), json_body=body).json())

    def get(self, app_id: str, exp_id: str) -> Experiment:
        return cast(Experiment, self._http.request("GET", _batch(app_id, exp_id)).json())

    def list(self, app_id: str, kind: str | None = None) -> list[Experiment]:
        """The app's experiments; with ``kind`` (batch, scenario, acceptance), that type's."""
        params = {"type": kind} if kind else None
        answer = self._http.request("GET", _batch(app_id), params=params)
        return cast(list[Experiment], answer.json())

    def metadata(self, app_id: str, exp_id: str) -> ExperimentMetadata:
        answer = self._http.request("GET", _batch(app_id, exp_id, "/metadata"))
        return cast(ExperimentMetadata, answer.json())

    def runs(self, app_id: str, exp_id: str) -> ExperimentRuns:
        answer = self._http.request("GET", _batch(app_id, exp_id, "/runs"))
        return cast(ExperimentRuns, answer.json())

    def summary(self, app_id: str, exp_id: str) -> Summary:
        return cast(Summary, self._http.request("GET", _batch(app_id, exp_id, "/summary")).json())

    def summary_csv(self, app_id: str, exp_id: str) -> str:
        path = _batch(app_id, exp_id, "/summary")
        return self._http.request("GET", path, params={"format": "csv"}).text

    def gate(self, app_id: str, exp_id: str, expr: str, baseline: str) -> Gate:
        params = {"expr": expr, "baseline": baseline}
        answer = self._http.request("GET", _batch(app_id, exp_id, "/gate"), params=params)
        return cast(Gate, answer.json())

    def report(
        self, app_id: str, exp_id: str, sink: Sink, baseline: str | None, gate: str | None = None
    ) -> None:
        """The self-contained HTML report, streamed into ``sink`` (with ``gate``: its verdict)."""
        given = {"baseline": baseline, "gate": gate}
        params = {k: v for k, v in given.items() if v} or None
        download(self._http, _batch(app_id, exp_id, "/report"), sink, params)

    def cancel(self, app_id: str, exp_id: str) -> ExperimentMetadata:
        answer = self._http.request("PATCH", _batch(app_id, exp_id, "/cancel"))
        return cast(ExperimentMetadata, answer.json())

    def delete(self, app_id: str, exp_id: str) -> None:
        self._http.request("DELETE", _batch(app_id, exp_id))
