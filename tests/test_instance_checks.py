"""An instance's options are checked when they are set (create, update, another version,
promote) by the rules runs use, and instance locking from the CLI.

Over HTTP and the CLI against the session daemon, with the official SDK for its own
paths; in-process for an instance whose options were stored before they were checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from nextmv import cloud

from orchestrator.config import Settings
from orchestrator.errors import Invalid
from orchestrator.home import Home
from orchestrator.models import App, EnvStatus, Executable, Instance, Version
from orchestrator.packaging.manifest import Manifest
from orchestrator.registry.instances import InstanceChanges, InstanceService
from orchestrator.registry.promote import promote
from orchestrator.runs.options import apply_options, check_instance_options
from orchestrator.store import Store
from tests.cli_run import new_app, orch, orch_json
from tests.helpers import SAMPLES, Daemon, create_app, push_dir, run_and_wait, write_app

BAD_SCALE = "option 'scale' (from instance) must be an integer, got 'abc'"
STRICT = (
    "type: python\nruntime: r\nfiles: [main.py]\nconfiguration:\n  options:\n"
    "    strict: true\n    items:\n      - {name: seed, option_type: int, required: true}\n"
)
RAW_MANIFEST = {
    "type": "python",
    "runtime": "r",
    "files": ["main.py"],
    "configuration": {"options": {"items": [{"name": "scale", "option_type": "int"}]}},
}


def _instances(app_id: str, instance_id: str = "") -> str:
    return f"/v1/applications/{app_id}/instances" + (f"/{instance_id}" if instance_id else "")


def _refused(r: httpx.Response, status: int, text: str) -> None:
    assert r.status_code == status, r.text
    assert text in r.json()["error"], r.json()["error"]


@pytest.fixture
def knapsack(api: httpx.Client, tmp_path: Path) -> str:
    """The knapsack sample (``scale`` an int) as version v1, an instance ``prod`` on it."""
    app_id = create_app(api)
    push_dir(api, app_id, SAMPLES / "knapsack", tmp_path)
    assert api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"}).status_code == 201
    body = {"id": "prod", "version_id": "v1", "configuration": {"options": {"scale": "2"}}}
    assert api.post(_instances(app_id), json=body).status_code == 201
    return app_id


# --- options, over HTTP -----------------------------------------------------------------


def test_create_refuses_an_option_its_runs_would_refuse(api: httpx.Client, knapsack: str) -> None:
    body = {"id": "bad", "version_id": "v1", "configuration": {"options": {"scale": "abc"}}}
    _refused(api.post(_instances(knapsack), json=body), 400, BAD_SCALE)
    assert api.get(_instances(knapsack, "bad")).status_code == 404
    loose = {"id": "ok", "version_id": "v1", "configuration": {"options": {"extra": "x"}}}
    assert api.post(_instances(knapsack), json=loose).status_code == 201  # not strict


def test_update_refuses_a_bad_option_and_keeps_the_old_ones(
    api: httpx.Client, knapsack: str
) -> None:
    bad = {"configuration": {"options": {"scale": "abc"}}}
    _refused(api.put(_instances(knapsack, "prod"), json=bad), 400, BAD_SCALE)
    _refused(api.put(_instances(knapsack, "prod"), json=bad), 400, "instance 'prod' on version")
    kept = api.get(_instances(knapsack, "prod")).json()
    assert kept["configuration"]["options"] == {"scale": "2"}
    echoed = api.put(_instances(knapsack, "prod"), json=kept)  # the SDK's GET + PUT
    assert echoed.status_code == 200, echoed.text
    res = run_and_wait(api, knapsack, {"input": {"weight_capacity": 5, "items": []}}, "prod")
    assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]


def test_strict_manifest_refuses_undeclared_names_not_missing_required(
    api: httpx.Client, tmp_path: Path
) -> None:
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp_path / "strict", "print('{}')\n", STRICT), tmp_path)
    assert api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"}).status_code == 201
    none = {"id": "bare", "version_id": "v1"}  # seed is required, but a run may give it
    assert api.post(_instances(app_id), json=none).status_code == 201
    undeclared = {"configuration": {"options": {"other": "1"}}}
    r = api.put(_instances(app_id, "bare"), json=undeclared)
    _refused(r, 400, "option 'other' (from instance) is not declared in app.yaml")
    wrong = {"configuration": {"options": {"seed": "x"}}}
    _refused(api.put(_instances(app_id, "bare"), json=wrong), 400, "'seed' (from instance)")


def _loose_prod(api: httpx.Client, tmp_path: Path) -> str:
    """An app whose v1 declares no options, instance ``prod`` on v1 with ``scale=abc``,
    and devint on the knapsack since (whose ``scale`` is an integer)."""
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp_path / "loose", "print('{}')\n"), tmp_path)
    assert api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"}).status_code == 201
    body = {"id": "prod", "version_id": "v1", "configuration": {"options": {"scale": "abc"}}}
    assert api.post(_instances(app_id), json=body).status_code == 201
    push_dir(api, app_id, SAMPLES / "knapsack", tmp_path)  # devint moves; prod does not care
    return app_id


def test_another_version_is_checked_with_the_options_the_instance_will_have(
    api: httpx.Client, tmp_path: Path
) -> None:
    """v1 declares no options, so ``scale=abc`` is fine there; v2 (knapsack) wants an int."""
    app_id = _loose_prod(api, tmp_path)
    assert api.get(_instances(app_id, "prod")).json()["version_id"] == "v1"
    assert api.post(f"/v1/applications/{app_id}/versions", json={"id": "v2"}).status_code == 201

    _refused(api.put(_instances(app_id, "prod"), json={"version_id": "v2"}), 400, BAD_SCALE)
    assert api.get(_instances(app_id, "prod")).json()["version_id"] == "v1"
    both = {"version_id": "v2", "configuration": {"options": {"scale": "3"}}}
    moved = api.put(_instances(app_id, "prod"), json=both)  # the new options, not the old
    assert moved.status_code == 200, moved.text
    assert moved.json()["version_id"] == "v2"


def test_promote_refuses_a_version_the_instance_options_do_not_suit(
    api: httpx.Client, tmp_path: Path
) -> None:
    app_id = _loose_prod(api, tmp_path)
    r = api.post(
        f"/v1/applications/{app_id}/promote", json={"version_id": "v2", "instance_id": "prod"}
    )
    _refused(r, 400, f"instance 'prod' on version 'v2': {BAD_SCALE}")
    assert api.get(f"/v1/applications/{app_id}/versions/v2").status_code == 404  # one transaction
    assert api.get(f"/v1/applications/{app_id}").json()["default_instance"] is None


# --- one check: the rules of runs, in-process ----------------------------------------------


def test_an_instance_is_checked_by_the_function_runs_use() -> None:
    manifest = Manifest.from_dict(RAW_MANIFEST)
    with pytest.raises(Invalid) as run:
        apply_options(manifest, {"scale": "abc"}, {})
    with pytest.raises(Invalid) as instance:
        check_instance_options(manifest, {"scale": "abc"})
    assert run.value.message == instance.value.message == BAD_SCALE
    with pytest.raises(Invalid, match="NUL"):
        check_instance_options(manifest, {"x": "a\0b"})


async def test_options_stored_before_the_check_do_not_block_other_changes(tmp_path: Path) -> None:
    """An instance saved with a bad option by an older orch: a rename, an echo (how the SDK
    unlocks) and new options pass; what keeps the bad option to another version does not."""
    store = Store(tmp_path / "orch.db")
    await store.open()
    try:
        async with store.write() as w:
            exe = Executable("a" * 64, 1, RAW_MANIFEST, "python", "r", EnvStatus.NONE)
            await w.executables.insert_if_missing(exe, "blobs/x")
            await w.apps.insert(App("app", "App", executable_id=exe.id))
            await w.versions.insert(Version("v1", "app", "v1", exe.id))
            await w.instances.insert(Instance("old", "app", "v1", "old", options={"scale": "abc"}))
        settings = Settings(home=Home(tmp_path))
        instances = InstanceService(store, settings)
        renamed = await instances.update("app", "old", InstanceChanges(name="Old"))
        assert renamed.name == "Old" and renamed.options == {"scale": "abc"}
        same = await instances.update("app", "old", InstanceChanges(options={"scale": "abc"}))
        assert same.options == {"scale": "abc"}
        with pytest.raises(Invalid, match="instance 'old' on version 'v2'"):
            await promote(store, settings, "app", "v2", None, instance_id="old")
        fixed = await instances.update("app", "old", InstanceChanges(options={"scale": "4"}))
        assert fixed.options == {"scale": "4"}
    finally:
        await store.close()


# --- the CLI --------------------------------------------------------------------------------


def test_cli_refuses_bad_options_and_clears_them(daemon: Daemon) -> None:
    app_id = new_app(daemon, SAMPLES / "knapsack")
    orch(daemon, f"app version create -a {app_id} -v v1")
    bad = orch(
        daemon, f"app instance create -a {app_id} --instance-id x -v v1 -o scale=abc", code=1
    )
    assert BAD_SCALE in bad.stderr
    orch(daemon, f"app instance create -a {app_id} --instance-id prod -v v1 -o scale=2")
    bad = orch(daemon, f"app instance update -a {app_id} --instance-id prod -o scale=abc", code=1)
    assert BAD_SCALE in bad.stderr

    empty = orch(daemon, f"app instance update -a {app_id} --instance-id prod -o", [""], code=2)
    assert "--clear-options" in empty.stderr
    both = orch(
        daemon, f"app instance update -a {app_id} --instance-id prod -o a=1 --clear-options", code=2
    )
    assert "not both" in both.stderr
    cleared = orch_json(
        daemon, f"app instance update -a {app_id} --instance-id prod --clear-options"
    )
    assert cleared["configuration"]["options"] == {}
    helped = orch(daemon, "app instance update --help")
    assert "--clear-options" in helped.stdout and "--unlock" in helped.stdout


def test_cli_locks_shows_and_unlocks(daemon: Daemon) -> None:
    app_id = new_app(daemon, SAMPLES / "knapsack")
    orch(daemon, f"app version create -a {app_id} -v v1")
    orch(daemon, f"app instance create -a {app_id} --instance-id prod -v v1")
    inst = f"-a {app_id} --instance-id prod"
    assert _field(orch(daemon, f"app instance get {inst}").stdout, "locked") == "no"

    locked = orch_json(daemon, f"app instance update {inst} --lock")
    assert locked["locked"] is True
    assert _field(orch(daemon, f"app instance get {inst}").stdout, "locked") == "yes"
    listed = _cells(orch(daemon, f"app instance list -a {app_id}").stdout)
    column = listed[0].index("locked")
    assert {row[0]: row[column] for row in listed[2:]} == {"devint": "-", "prod": "yes"}

    refused = orch(daemon, f"app instance update {inst} -n New", code=1)
    assert f"orch app instance update -a {app_id} --instance-id prod --unlock" in refused.stderr
    refused = orch(daemon, f"app instance delete {inst} --confirm", code=1)
    assert "--unlock" in refused.stderr

    changed = orch_json(daemon, f"app instance update {inst} --unlock -n Unlocked")
    assert (changed["name"], changed["locked"]) == ("Unlocked", False)
    relocked = orch_json(daemon, f"app instance update {inst} -n Again --lock")
    assert (relocked["name"], relocked["locked"]) == ("Again", True)
    assert orch_json(daemon, f"app instance update {inst} --unlock")["locked"] is False
    nothing = orch(daemon, f"app instance update {inst}", code=2)
    assert "--lock" in nothing.stderr


def _cells(shown: str) -> list[list[str]]:
    """``list``'s table as rows of cells (the header first)."""
    return [
        [c.strip() for c in line.replace("┃", "│").split("│")]
        for line in shown.splitlines()
        if line.strip()
    ]


def _field(shown: str, label: str) -> str:
    """A row of ``get``'s two-column table: the value beside ``label``."""
    for line in shown.splitlines():
        words = line.split()
        if words[:1] == [label]:
            return " ".join(words[1:])
    raise AssertionError(f"no {label!r} in {shown}")


# --- the SDK ------------------------------------------------------------------------------


def test_sdk_new_and_update_instance_refuse_bad_options_and_lock(daemon: Daemon) -> None:
    client = cloud.Client(api_key=daemon.key, url=daemon.url)
    app = cloud.Application.get(client=client, id=new_app(daemon, SAMPLES / "knapsack"))
    app.new_version(id="v1")
    with pytest.raises(requests.HTTPError) as refused:
        app.new_instance(version_id="v1", id="bad", configuration=_options({"scale": "zz"}))
    assert "option 'scale' (from instance) must be an integer, got 'zz'" in _error(refused.value)
    app.new_instance(version_id="v1", id="prod", configuration=_options({"scale": 2}))
    with pytest.raises(requests.HTTPError) as refused:
        app.update_instance(id="prod", configuration=_options({"scale": "zz"}))
    assert "'scale' (from instance)" in _error(refused.value)

    assert app.update_instance(id="prod", locked=True).locked is True
    with pytest.raises(requests.HTTPError) as refused:
        app.update_instance(id="prod", name="moved")
    assert "--unlock" in _error(refused.value)
    unlocked = app.update_instance(id="prod", locked=False)  # PUT of the same, then the lock
    assert unlocked.locked is False and app.instance("prod").configuration.options == {"scale": "2"}


def _options(options: dict[str, Any]) -> cloud.InstanceConfiguration:
    return cloud.InstanceConfiguration(options=options)


def _error(e: requests.HTTPError) -> str:
    assert e.response is not None
    body: dict[str, Any] = json.loads(e.response.text)
    return str(body["error"])


def test_help_says_the_instance_id_is_required(daemon: Daemon) -> None:
    """It is declared optional (the old -i spelling is merged into it by hand), so -h did
    not mark it while leaving it out was an error."""
    for command in ("create", "get", "update", "delete"):
        shown = orch(daemon, f"app instance {command} -h").stdout
        assert "Instance ID (required" in " ".join(shown.split()), command
