"""Versions, instances, the reserved devint, promote and the default instance."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.helpers import SAMPLES, create_app, push_dir


@pytest.fixture
def pushed(api: httpx.Client, tmp_path: Path) -> tuple[str, str]:
    app_id = create_app(api)
    exe = push_dir(api, app_id, SAMPLES / "knapsack", tmp_path)["executable"]["id"]
    return app_id, exe


def test_version_needs_a_push(api: httpx.Client) -> None:
    app_id = create_app(api)
    r = api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1", "name": "one"})
    assert r.status_code == 409 and "push one first" in r.json()["error"]


def test_version_snapshots_the_current_executable(
    api: httpx.Client, pushed: tuple[str, str], tmp_path: Path
) -> None:
    app_id, exe = pushed
    v = api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1", "name": "one"}).json()
    assert v["executable"]["id"] == exe and v["application_id"] == app_id
    assert v["executable"]["requirements"]["runtime"].endswith("python:3.11")
    push_dir(api, app_id, SAMPLES / "shell-echo", tmp_path)  # devint moves, v1 must not
    assert api.get(f"/v1/applications/{app_id}/versions/v1").json()["executable"]["id"] == exe
    dup = api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1", "name": "x"})
    assert dup.status_code == 409
    generated = api.post(f"/v1/applications/{app_id}/versions", json={}).json()
    assert generated["id"].startswith("version-") and generated["name"] == generated["id"]
    listed = api.get(f"/v1/applications/{app_id}/versions", params={"pagereturn": "true"}).json()
    assert [x["id"] for x in listed["items"]] == ["v1", generated["id"]]
    r = api.put(f"/v1/applications/{app_id}/versions/v1", json={"name": "renamed"})
    assert r.json()["name"] == "renamed" and r.json()["executable"]["id"] == exe
    bad = api.post(f"/v1/applications/{app_id}/versions", json={"id": "bad id!"})
    assert bad.status_code == 400


def test_instances_crud_and_version_in_use(api: httpx.Client, pushed: tuple[str, str]) -> None:
    app_id, _ = pushed
    api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"})
    body = {
        "id": "prod",
        "version_id": "v1",
        "name": "Production",
        "configuration": {"options": {"duration": 3}, "limits": {"memory_mb": 256}},
    }
    inst = api.post(f"/v1/applications/{app_id}/instances", json=body).json()
    assert inst["configuration"]["options"] == {"duration": "3"}
    assert inst["configuration"]["limits"] == {"memory_mb": 256}
    ids = [i["id"] for i in api.get(f"/v1/applications/{app_id}/instances").json()]
    assert ids == ["devint", "prod"]
    r = api.delete(f"/v1/applications/{app_id}/versions/v1")
    assert r.status_code == 409 and "prod" in r.json()["error"]
    missing = api.post(
        f"/v1/applications/{app_id}/instances", json={"id": "x1", "version_id": "nope"}
    )
    assert missing.status_code == 404
    bad_limit = api.post(
        f"/v1/applications/{app_id}/instances",
        json={"id": "x2", "version_id": "v1", "configuration": {"limits": {"memory_mb": -1}}},
    )
    assert bad_limit.status_code == 400 and "memory_mb" in bad_limit.json()["error"]
    upd = api.put(
        f"/v1/applications/{app_id}/instances/prod", json={"description": "main", "name": "P"}
    ).json()
    assert upd["description"] == "main" and upd["configuration"]["options"] == {"duration": "3"}
    assert api.delete(f"/v1/applications/{app_id}/instances/prod").status_code == 204
    assert api.delete(f"/v1/applications/{app_id}/versions/v1").status_code == 204


@pytest.mark.parametrize("reserved", ["devint", "latest"])
def test_devint_is_reserved(api: httpx.Client, pushed: tuple[str, str], reserved: str) -> None:
    app_id, _ = pushed
    api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"})
    create = api.post(
        f"/v1/applications/{app_id}/instances", json={"id": reserved, "version_id": "v1"}
    )
    assert create.status_code == 409 and "reserved" in create.json()["error"]
    update = api.put(f"/v1/applications/{app_id}/instances/{reserved}", json={"version_id": "v1"})
    assert update.status_code == 409
    assert api.delete(f"/v1/applications/{app_id}/instances/{reserved}").status_code == 409


def test_default_instance_delete_needs_force(api: httpx.Client, pushed: tuple[str, str]) -> None:
    app_id, _ = pushed
    api.post(f"/v1/applications/{app_id}/promote", json={"version_id": "v1", "instance_id": "main"})
    r = api.delete(f"/v1/applications/{app_id}/instances/main")
    assert r.status_code == 409 and "--force" in r.json()["error"]
    assert (
        api.delete(
            f"/v1/applications/{app_id}/instances/main", params={"force": "true"}
        ).status_code
        == 204
    )
    assert api.get(f"/v1/applications/{app_id}").json()["default_instance"] is None


def test_promote_as_the_seed_describes(
    api: httpx.Client, pushed: tuple[str, str], tmp_path: Path
) -> None:
    app_id, exe = pushed
    # No default yet, no instance named: a new instance is created and becomes the default.
    first = api.post(f"/v1/applications/{app_id}/promote", json={"version_id": "v1"}).json()
    created = first["instance"]["id"]
    assert first["created_instance"] and first["application"]["default_instance"] == created
    assert first["version"]["executable"]["id"] == exe
    # Default exists: the next promote attaches the new version to it.
    newer = push_dir(api, app_id, SAMPLES / "shell-echo", tmp_path)["executable"]["id"]
    second = api.post(f"/v1/applications/{app_id}/promote", json={"version_id": "v2"}).json()
    assert second["instance"]["id"] == created and second["instance"]["version_id"] == "v2"
    assert second["version"]["executable"]["id"] == newer
    # A named, missing instance is created with a generated name and becomes the default.
    third = api.post(
        f"/v1/applications/{app_id}/promote", json={"version_id": "v3", "instance_id": "canary"}
    ).json()
    assert third["created_instance"] and third["instance"]["name"]
    assert api.get(f"/v1/applications/{app_id}").json()["default_instance"] == "canary"
    moves = api.get(f"/v1/applications/{app_id}/history").json()["items"]
    kinds = {(m["pointer"], m["action"]) for m in moves}
    assert ("default_instance", "promote") in kinds
    assert (f"instance:{created}", "promote") in kinds
    # One transaction: a failing promote (an existing version, named otherwise) changes
    # nothing; without a name it is promoted as it is (the daily walk).
    before = api.get(f"/v1/applications/{app_id}").json()
    dup = api.post(
        f"/v1/applications/{app_id}/promote",
        json={"version_id": "v1", "name": "Renamed", "instance_id": "canary"},
    )
    assert dup.status_code == 409
    assert api.get(f"/v1/applications/{app_id}").json() == before


def test_locked_instance_refuses_changes_but_not_echoes(
    api: httpx.Client, pushed: tuple[str, str]
) -> None:
    app_id, _ = pushed
    api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"})
    base = f"/v1/applications/{app_id}/instances"
    api.post(base, json={"id": "frozen", "version_id": "v1"})
    locked = api.put(f"{base}/frozen/lock", json={"locked": True}).json()
    assert locked["locked"] is True
    echo = api.put(f"{base}/frozen", json=locked)  # the SDK's GET + PUT round trip
    assert echo.status_code == 200
    change = api.put(f"{base}/frozen", json={"name": "other"})
    assert change.status_code == 409 and "locked" in change.json()["error"]
    assert api.delete(f"{base}/frozen").status_code == 409
    api.put(f"{base}/frozen/lock", json={"locked": False})
    assert api.delete(f"{base}/frozen").status_code == 204


def test_promote_moves_no_locked_instance(api: httpx.Client, pushed: tuple[str, str]) -> None:
    """A locked instance refuses every change, a promote's included: it stays on its
    version and the promote changes nothing (one transaction)."""
    app_id, _ = pushed
    base = f"/v1/applications/{app_id}"
    first = api.post(f"{base}/promote", json={"version_id": "v1"}).json()["instance"]["id"]
    api.put(f"{base}/instances/{first}/lock", json={"locked": True})
    for body in ({"version_id": "v2"}, {"version_id": "v2", "instance_id": first}):
        r = api.post(f"{base}/promote", json=body)
        assert r.status_code == 409 and "locked" in r.json()["error"], r.text
    assert api.get(f"{base}/instances/{first}").json()["version_id"] == "v1"
    assert api.get(f"{base}/versions/v2").status_code == 404


def test_default_is_the_alias_not_an_instance_id(
    api: httpx.Client, pushed: tuple[str, str]
) -> None:
    """Runs read ``default`` as the app's default instance, so no instance may take the
    name; a promote to ``default`` goes to the default instance."""
    app_id, _ = pushed
    base = f"/v1/applications/{app_id}"
    first = api.post(f"{base}/promote", json={"version_id": "v1"}).json()["instance"]["id"]
    made = api.post(f"{base}/instances", json={"id": "default", "version_id": "v1"})
    assert made.status_code == 409 and "default instance" in made.json()["error"], made.text
    to_alias = api.post(f"{base}/promote", json={"version_id": "v2", "instance_id": "default"})
    assert to_alias.status_code == 200, to_alias.text  # an existing instance: none created
    assert to_alias.json()["instance"]["id"] == first
    assert api.get(f"{base}/instances/{first}").json()["version_id"] == "v2"
