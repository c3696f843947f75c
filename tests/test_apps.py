"""Apps over HTTP: create, read, update, delete, ID rules, history."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from tests.helpers import SAMPLES, Daemon, create_app, push_dir, unique


@pytest.mark.parametrize(
    ("bad_id", "rule"),
    [
        ("ab", "between 3 and 30"),
        ("a" * 31, "between 3 and 30"),
        ("Upper-case", "lowercase letters"),
        ("has space", "lowercase letters"),
        ("-leading", "cannot start or end"),
        ("trailing.", "cannot start or end"),
    ],
)
def test_bad_app_ids_name_the_rule(api: httpx.Client, bad_id: str, rule: str) -> None:
    r = api.post("/v1/applications", json={"id": bad_id, "name": "x"})
    assert r.status_code == 400
    assert rule in r.json()["error"]


def test_create_get_list_update_delete(api: httpx.Client) -> None:
    app_id = unique()
    r = api.post("/v1/applications", json={"id": app_id, "name": "Knap", "description": "d"})
    assert r.status_code == 201
    assert r.json()["name"] == "Knap"
    assert api.get(f"/v1/applications/{app_id}").json()["description"] == "d"
    listed = api.get("/v1/applications").json()
    assert app_id in [a["id"] for a in listed]
    paged = api.get("/v1/applications", params={"pagereturn": "true"}).json()
    assert paged["next_page_token"] == "" and app_id in [a["id"] for a in paged["items"]]
    r = api.put(f"/v1/applications/{app_id}", json={"name": "Renamed"})
    assert r.json()["name"] == "Renamed" and r.json()["description"] == "d"
    assert api.delete(f"/v1/applications/{app_id}").status_code == 204
    assert api.get(f"/v1/applications/{app_id}").status_code == 404


def test_duplicate_and_missing(api: httpx.Client) -> None:
    app_id = create_app(api)
    r = api.post("/v1/applications", json={"id": app_id, "name": "again"})
    assert r.status_code == 409 and "already exists" in r.json()["error"]
    assert api.get("/v1/applications/no-such-app").json() == {
        "error": "app 'no-such-app' not found"
    }
    assert api.delete("/v1/applications/no-such-app").status_code == 404


def test_name_is_required(api: httpx.Client) -> None:
    r = api.post("/v1/applications", json={"id": unique()})
    assert r.status_code == 422 and "name" in r.json()["error"]
    r = api.post("/v1/applications", json={"id": unique(), "name": "  "})
    assert r.status_code == 400


def test_default_instance_must_exist_and_cannot_be_devint(api: httpx.Client) -> None:
    app_id = create_app(api)
    r = api.put(f"/v1/applications/{app_id}", json={"default_instance": "ghost"})
    assert r.status_code == 404 and "ghost" in r.json()["error"]
    # devint/latest as default means "no default": runs already go there.
    r = api.put(f"/v1/applications/{app_id}", json={"default_instance": "latest"})
    assert r.status_code == 200 and r.json()["default_instance"] is None


def test_delete_removes_versions_instances_runs_and_unreferenced_blobs(
    api: httpx.Client, daemon: Daemon, tmp_path: Path
) -> None:
    home = daemon.home
    app_id = create_app(api)
    # A package of its own: the session's daemon may hold the sample's bytes for other apps.
    package = tmp_path / "own-echo"
    shutil.copytree(SAMPLES / "shell-echo", package)
    with (package / "main").open("a") as main:
        main.write(f"# only for {app_id}\n")
    exe = push_dir(api, app_id, package, tmp_path)["executable"]["id"]
    api.post(f"/v1/applications/{app_id}/promote", json={"version_id": "v1"})
    r = api.post(f"/v1/applications/{app_id}/runs", json={"input": {"a": 1}})
    run_id = r.json()["run_id"]
    api.get(f"/v1/applications/{app_id}/runs/{run_id}", params={"wait": 30})
    up = api.post(f"/v1/applications/{app_id}/runs/uploadurl").json()
    httpx.put(up["upload_url"], content=b'{"kept": "only here, in %s"}' % app_id.encode())
    kept = api.post(
        f"/v1/applications/{app_id}/inputs", json={"name": "k", "upload_id": up["upload_id"]}
    ).json()["sha256"]
    other = create_app(api)  # another app sharing nothing must keep everything
    push_dir(api, other, SAMPLES / "knapsack", tmp_path)
    assert (home / "blobs" / exe[:2] / exe).exists()
    assert api.delete(f"/v1/applications/{app_id}").status_code == 204
    assert not (home / "blobs" / exe[:2] / exe).exists()
    assert not (home / "executables" / exe).exists()
    assert not (home / "runs" / run_id).exists()
    assert not (home / "blobs" / kept[:2] / kept).exists()
    assert api.get(f"/v1/applications/{other}/executable").status_code == 200


def test_an_id_with_characters_it_may_not_have_names_them_in_order() -> None:
    """They were a sorted set glued into one string: ``Bad_ID`` said ``(found 'BDI_')``."""
    from orchestrator.errors import Invalid
    from orchestrator.ids import validate_id

    with pytest.raises(Invalid) as refused:
        validate_id("Bad_ID")
    assert str(refused.value) == (
        "app ID 'Bad_ID' may only contain lowercase letters, numbers, periods or hyphens "
        "(not 'B', '_', 'I', 'D')"
    )
