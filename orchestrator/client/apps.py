"""Apps and what hangs off them: pushes, versions, instances, promote, history."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

from orchestrator.client.transport import ClientError, Transport
from orchestrator.client.types import (
    App,
    Executable,
    History,
    Instance,
    Promotion,
    Pushed,
    Version,
)


def segment(object_id: str) -> str:
    """An ID as one segment of a URL: quoted, never empty, which would name the collection
    instead (a GET would list it, a DELETE be redirected), and without ``/``: the server
    decodes ``%2F`` before it routes, so one would reach another route (no ID has one)."""
    if not object_id.strip():
        raise ClientError("an ID cannot be empty")
    if "/" in object_id:
        raise ClientError(f"{object_id!r} is no ID: IDs have no '/'")
    return quote(object_id, safe="")


def app_path(app_id: str, tail: str = "") -> str:
    return f"/v1/applications/{segment(app_id)}{tail}"


def child(app_id: str, kind: str, child_id: str | None = None) -> str:
    return app_path(app_id, f"/{kind}" + (f"/{segment(child_id)}" if child_id is not None else ""))


class Apps:
    def __init__(self, http: Transport) -> None:
        self._http = http

    def list(self) -> list[App]:
        return cast(list[App], self._http.request("GET", "/v1/applications").json())

    def create(self, app_id: str, name: str, description: str = "") -> App:
        body = {"id": app_id, "name": name, "description": description}
        return cast(App, self._http.request("POST", "/v1/applications", json_body=body).json())

    def get(self, app_id: str) -> App:
        return cast(App, self._http.request("GET", app_path(app_id)).json())

    def update(
        self, app_id: str, name: str, description: str, default_instance: str | None = None
    ) -> App:
        """``default_instance``: None leaves it, "" clears it (the daemon records each change)."""
        body: dict[str, Any] = {"name": name, "description": description}
        if default_instance is not None:
            body["default_instance"] = default_instance or None
        return cast(App, self._http.request("PUT", app_path(app_id), json_body=body).json())

    def delete(self, app_id: str) -> None:
        self._http.request("DELETE", app_path(app_id))

    def history(self, app_id: str) -> History:
        return cast(History, self._http.request("GET", app_path(app_id, "/history")).json())

    def promote(
        self,
        app_id: str,
        version_id: str,
        name: str | None = None,
        description: str = "",
        instance_id: str | None = None,
    ) -> Promotion:
        body = {
            "version_id": version_id,
            "name": name,
            "description": description,
            "instance_id": instance_id,
        }
        answer = self._http.request("POST", app_path(app_id, "/promote"), json_body=body)
        return cast(Promotion, answer.json())

    def executable(self, app_id: str) -> Executable:
        """The executable devint runs, with its python environment's status."""
        return cast(Executable, self._http.request("GET", app_path(app_id, "/executable")).json())

    def push(self, app_id: str, package: Path, executable_type: str, runtime: str) -> Pushed:
        """The SDK's three steps: ask for an upload URL, PUT the bytes, commit."""
        target = self._http.request("GET", app_path(app_id, "/binary")).json()
        with package.open("rb") as fh:
            self._http.request("PUT", target["upload_url"], body=fh, timeout=600)
        requirements = {"executable_type": executable_type, "runtime": runtime}
        body: dict[str, Any] = {"requirements": requirements}
        if upload_id := target.get("upload_id"):  # this push's own (a daemon before 12-07: none)
            body["upload_id"] = upload_id
        answer = self._http.request("PUT", app_path(app_id, "/binary"), json_body=body)
        return cast(Pushed, answer.json())


class Versions:
    def __init__(self, http: Transport) -> None:
        self._http = http

    def create(self, app_id: str, version_id: str, name: str, description: str = "") -> Version:
        body = {"id": version_id, "name": name, "description": description}
        answer = self._http.request("POST", child(app_id, "versions"), json_body=body)
        return cast(Version, answer.json())

    def list(self, app_id: str) -> list[Version]:
        return cast(list[Version], self._http.request("GET", child(app_id, "versions")).json())

    def get(self, app_id: str, version_id: str) -> Version:
        answer = self._http.request("GET", child(app_id, "versions", version_id))
        return cast(Version, answer.json())

    def update(
        self, app_id: str, version_id: str, name: str | None, description: str | None
    ) -> Version:
        given = {"name": name, "description": description}
        body = {k: v for k, v in given.items() if v is not None}
        answer = self._http.request("PUT", child(app_id, "versions", version_id), json_body=body)
        return cast(Version, answer.json())

    def delete(self, app_id: str, version_id: str) -> None:
        self._http.request("DELETE", child(app_id, "versions", version_id))


class Instances:
    def __init__(self, http: Transport) -> None:
        self._http = http

    def create(
        self,
        app_id: str,
        instance_id: str,
        version_id: str,
        name: str,
        description: str,
        configuration: dict[str, Any],
    ) -> Instance:
        body = {
            "id": instance_id,
            "name": name,
            "version_id": version_id,
            "description": description,
            "configuration": configuration,
        }
        answer = self._http.request("POST", child(app_id, "instances"), json_body=body)
        return cast(Instance, answer.json())

    def list(self, app_id: str) -> list[Instance]:
        return cast(list[Instance], self._http.request("GET", child(app_id, "instances")).json())

    def get(self, app_id: str, instance_id: str) -> Instance:
        answer = self._http.request("GET", child(app_id, "instances", instance_id))
        return cast(Instance, answer.json())

    def update(
        self, app_id: str, instance_id: str, changes: dict[str, Any], locked: bool | None = None
    ) -> Instance:
        """Only the fields in ``changes`` change; a ``configuration.limits`` replaces the limits.
        ``locked``: False unlocks first, True locks after, in the same write (a refused
        change leaves the lock as it was)."""
        path = child(app_id, "instances", instance_id)
        params = None if locked is None else {"locked": locked}
        answer = self._http.request("PUT", path, json_body=changes, params=params)
        return cast(Instance, answer.json())

    def set_lock(self, app_id: str, instance_id: str, locked: bool) -> Instance:
        """Lock (no update, promote or delete moves it) or unlock, as the SDK's ``locked=``."""
        path = child(app_id, "instances", instance_id) + "/lock"
        return cast(Instance, self._http.request("PUT", path, json_body={"locked": locked}).json())

    def delete(self, app_id: str, instance_id: str, force: bool = False) -> None:
        params = {"force": True} if force else None
        self._http.request("DELETE", child(app_id, "instances", instance_id), params=params)
