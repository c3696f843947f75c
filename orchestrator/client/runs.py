"""Runs: create (inline or uploaded input), wait, read, logs, cancel, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, cast

from orchestrator.client.apps import child, segment
from orchestrator.client.transport import Params, Transport
from orchestrator.client.types import (
    AssetDownload,
    AssetList,
    LiveLog,
    RunCreated,
    RunInfo,
    RunPage,
    SignedUrl,
    Upload,
)

LONG_POLL_SECONDS = 60.0
"""How long one ``?wait=`` request may hold; the daemon answers sooner when the run ends."""


class Sink(Protocol):
    """Where a downloaded body goes: a file opened ``wb``, ``sys.stdout.buffer``, a buffer."""

    def write(self, data: bytes, /) -> object: ...


def run_path(app_id: str, run_id: str | None = None, tail: str = "") -> str:
    return child(app_id, "runs", run_id) + tail


class Runs:
    def __init__(self, http: Transport) -> None:
        self._http = http

    def create(
        self, app_id: str, body: dict[str, Any], instance_id: str | None = None
    ) -> RunCreated:
        """``body``: the API's run request (``input`` or ``upload_id``, options, configuration)."""
        params = {"instance_id": instance_id} if instance_id else None
        answer = self._http.request("POST", run_path(app_id), params=params, json_body=body)
        return cast(RunCreated, answer.json())

    def upload(self, app_id: str, source: Path) -> str:
        """Stream a file to a fresh upload URL; its ``upload_id`` names it in a run or input."""
        target = cast(
            Upload, self._http.request("POST", run_path(app_id, tail="/uploadurl")).json()
        )
        with source.open("rb") as fh:
            self._http.request("PUT", target["upload_url"], body=fh, timeout=600)
        return target["upload_id"]

    def metadata(self, app_id: str, run_id: str, wait: float = 0) -> RunInfo:
        """Status and facts of a run; with ``wait`` the daemon answers the moment it ends
        (or after ``wait`` seconds), so waiting needs no polling loop."""
        params = {"wait": wait} if wait else None
        path = run_path(app_id, run_id, "/metadata")
        answer = self._http.request("GET", path, params=params, timeout=wait + 30)
        return cast(RunInfo, answer.json())

    def result(self, app_id: str, run_id: str) -> RunInfo:
        """The metadata plus the output (or, over 5 MiB, a URL to it)."""
        return cast(RunInfo, self._http.request("GET", run_path(app_id, run_id)).json())

    def list(
        self,
        app_id: str,
        status: str | None = None,
        instance_id: str | None = None,
        limit: int = 50,
        page_token: str | None = None,
    ) -> RunPage:
        params = {
            "status": status,
            "instance_id": instance_id,
            "limit": limit,
            "pagetoken": page_token,
        }
        return cast(RunPage, self._http.request("GET", run_path(app_id), params=params).json())

    def live_logs(self, app_id: str, run_id: str, since: str | None = None) -> LiveLog:
        """New log lines after ``since`` (the previous answer's ``next_page_token``)."""
        path = run_path(app_id, run_id, "/logs/live")
        params = {"since": since} if since else None
        return cast(LiveLog, self._http.request("GET", path, params=params).json())

    def download_log(self, app_id: str, run_id: str, sink: Sink) -> bytes:
        """The whole log's bytes into ``sink`` (``logs`` gets JSON, cut to its last 5 MiB)."""
        return self._download(run_path(app_id, run_id, "/logs/raw"), sink)

    def download_output(self, app_id: str, run_id: str, sink: Sink) -> bytes:
        """The output's bytes into ``sink``; returns the last byte (to end a terminal line)."""
        return self._download(run_path(app_id, run_id, "/output"), sink)

    def download_input(self, app_id: str, run_id: str, sink: Sink) -> bytes:
        """The input byte for byte, through its signed URL (``raw``): ``.../input``
        answers a text input as a JSON string and its URL as a tar.gz, the way the SDK
        reads them."""
        path = run_path(app_id, run_id, "/input")
        signed = cast(SignedUrl, self._http.request("GET", path, params={"format": "url"}).json())
        return self._download(signed["url"] + "&raw=true", sink)  # the SDK gets text as tar.gz

    def track(
        self,
        app_id: str,
        body: dict[str, Any],
        result: dict[str, Any],
        files: dict[str, Path],
        instance_id: str | None = None,
    ) -> RunCreated:
        """Record a run that happened elsewhere (a tracked run): each of ``files`` (``input``
        and the ``result``'s ``output_upload_id``, ``error_upload_id``...) is uploaded
        first and named by its upload id, as the SDK's ``track_run`` does."""
        uploaded = {key: self.upload(app_id, path) for key, path in files.items()}
        body = body | {"upload_id": uploaded.pop("input")} if "input" in uploaded else body
        return self.create(app_id, body | {"result": result | uploaded}, instance_id)

    def assets(self, app_id: str, run_id: str) -> AssetList:
        path = run_path(app_id, run_id, "/assets")
        return cast(AssetList, self._http.request("GET", path).json())

    def asset(self, app_id: str, run_id: str, asset_id: str) -> AssetDownload:
        path = run_path(app_id, run_id, f"/assets/{segment(asset_id)}")
        return cast(AssetDownload, self._http.request("GET", path).json())

    def download_asset(self, app_id: str, run_id: str, asset_id: str, sink: Sink) -> bytes:
        """An asset's content (JSON or bytes) into ``sink``, through its download URL."""
        return self._download(self.asset(app_id, run_id, asset_id)["download_url"], sink)

    def cancel(self, app_id: str, run_id: str) -> RunInfo:
        return cast(
            RunInfo, self._http.request("PATCH", run_path(app_id, run_id, "/cancel")).json()
        )

    def delete(self, app_id: str, run_id: str) -> None:
        self._http.request("DELETE", run_path(app_id, run_id))

    def _download(self, path: str, sink: Sink, params: Params | None = None) -> bytes:
        return download(self._http, path, sink, params)


def download(http: Transport, path: str, sink: Sink, params: Params | None = None) -> bytes:
    """Stream a body into ``sink``; returns its last byte (``b""`` when empty)."""
    last = b""
    with http.stream(path, params) as chunks:
        for chunk in chunks:
            sink.write(chunk)
            last = chunk[-1:]
    return last
