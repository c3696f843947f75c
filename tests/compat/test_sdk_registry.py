"""Registry through the official SDK: apps, push, versions, instances, default instance, errors."""

from __future__ import annotations

import pytest
import requests
from nextmv import cloud

from tests.compat.conftest import NewApp, Push
from tests.helpers import SAMPLES, Daemon, unique


def test_app_create_exists_list_update_delete(client: cloud.Client, new_app: NewApp) -> None:
    app = new_app("reg", name="First name")
    assert app.id and app.name == "First name" and app.type == cloud.ApplicationType.CUSTOM
    assert app.default_instance_id is None
    assert cloud.Application.exists(client=client, id=app.id)
    assert not cloud.Application.exists(client=client, id=unique("missing"))

    paged = cloud.list_applications(client)
    flat = cloud.list_applications(client, no_pagination=True)
    assert app.id in {a.id for a in paged}
    assert app.id in {a.id for a in flat}
    assert {a.id for a in paged} == {a.id for a in flat}

    updated = app.update(name="Renamed", description="via the SDK")
    assert (updated.id, updated.name, updated.description) == (app.id, "Renamed", "via the SDK")
    again = cloud.Application.get(client=client, id=app.id)
    assert (again.name, again.description) == ("Renamed", "via the SDK")

    app.delete()
    assert not cloud.Application.exists(client=client, id=app.id)
    assert app.id not in {a.id for a in cloud.list_applications(client)}


def test_new_with_exist_ok_returns_the_existing_app(client: cloud.Client, new_app: NewApp) -> None:
    app = new_app("reg")
    same = cloud.Application.new(client=client, id=app.id, name="ignored", exist_ok=True)
    assert same.id == app.id and same.name == app.name


def test_sdk_push_moves_devint(daemon: Daemon, new_app: NewApp, push: Push) -> None:
    app = new_app("push")
    with daemon.client() as api:
        before = api.get(f"/v1/applications/{app.id}/executable")
        assert before.status_code in (404, 409), before.text  # nothing pushed yet

        push(app, SAMPLES / "knapsack")
        first = api.get(f"/v1/applications/{app.id}/executable")
        assert first.status_code == 200, first.text
        assert first.json()["requirements"]["executable_type"] == "python"

        push(app, SAMPLES / "shell-echo")
        second = api.get(f"/v1/applications/{app.id}/executable")
        assert second.status_code == 200, second.text
        assert second.json()["id"] != first.json()["id"]
        assert second.json()["requirements"]["executable_type"] == "binary"

        history = api.get(f"/v1/applications/{app.id}/history")
        assert history.status_code == 200, history.text
    moves = [m for m in history.json()["items"] if m["pointer"] == "devint"]
    assert {(m["from"], m["to"]) for m in moves} >= {
        (None, first.json()["id"]),
        (first.json()["id"], second.json()["id"]),
    }
    assert all(m["action"] == "push" for m in moves)


@pytest.fixture(scope="module")
def pushed(new_app: NewApp, push: Push) -> cloud.Application:
    app = new_app("reg")
    push(app, SAMPLES / "knapsack")
    return app


def test_versions(pushed: cloud.Application) -> None:
    vid = unique("v")
    version = pushed.new_version(id=vid, name="Version one", description="first")
    assert (version.id, version.name, version.description) == (vid, "Version one", "first")
    assert version.application_id == pushed.id
    assert version.executable.requirements.executable_type == "python"

    got = pushed.version(vid)
    assert got.id == vid and got.executable.id == version.executable.id
    assert vid in {v.id for v in pushed.list_versions()}
    assert pushed.version_exists(vid)
    assert not pushed.version_exists(unique("nov"))

    renamed = pushed.update_version(vid, name="Renamed", description="changed")
    assert (renamed.name, renamed.description) == ("Renamed", "changed")
    assert pushed.version(vid).name == "Renamed"

    pushed.delete_version(vid)
    assert not pushed.version_exists(vid)
    assert vid not in {v.id for v in pushed.list_versions()}


def test_instances(pushed: cloud.Application, push: Push) -> None:
    v1 = pushed.new_version(id=unique("v"), name="one")
    push(pushed, SAMPLES / "shell-echo")
    v2 = pushed.new_version(id=unique("v"), name="two")
    assert v1.executable.id != v2.executable.id
    push(pushed, SAMPLES / "knapsack")  # leave devint on knapsack for the other tests

    iid = unique("i")
    config = cloud.InstanceConfiguration(options={"scale": "2", "duration": 3})
    inst = pushed.new_instance(version_id=v1.id, id=iid, name="Prod", configuration=config)
    assert (inst.id, inst.name, inst.version_id) == (iid, "Prod", v1.id)
    assert inst.application_id == pushed.id and inst.locked is False
    assert inst.configuration.options == {"scale": "2", "duration": "3"}

    assert pushed.instance(iid).version_id == v1.id
    listed = {i.id: i for i in pushed.list_instances()}
    assert iid in listed and listed[iid].version_id == v1.id
    assert pushed.instance_exists(iid)
    assert not pushed.instance_exists(unique("noi"))

    moved = pushed.update_instance(iid, version_id=v2.id, name="Prod 2", description="moved")
    assert (moved.version_id, moved.name, moved.description) == (v2.id, "Prod 2", "moved")
    assert moved.configuration.options == {"scale": "2", "duration": "3"}  # kept by the PUT
    assert pushed.instance(iid).version_id == v2.id

    pushed.delete_instance(iid)
    assert not pushed.instance_exists(iid)
    assert iid not in {i.id for i in pushed.list_instances()}


def test_default_instance_round_trip(client: cloud.Client, pushed: cloud.Application) -> None:
    version = pushed.new_version(id=unique("v"))
    iid = unique("i")
    pushed.new_instance(version_id=version.id, id=iid)

    updated = pushed.update(default_instance_id=iid)
    assert updated.default_instance_id == iid
    assert cloud.Application.get(client=client, id=pushed.id).default_instance_id == iid

    # A later update that does not name the default keeps it (the SDK PUTs the whole app).
    assert pushed.update(name="Still default").default_instance_id == iid
    assert cloud.Application.get(client=client, id=pushed.id).default_instance_id == iid

    cleared = pushed.update(default_instance_id="")
    assert cleared.default_instance_id is None


def test_exist_ok_and_generated_ids(pushed: cloud.Application) -> None:
    version = pushed.new_version()  # id and name generated by the SDK (safe_id)
    assert version.id.startswith("version-") and version.name == version.id
    assert pushed.new_version(id=version.id, exist_ok=True).id == version.id
    inst = pushed.new_instance(version_id=version.id)
    assert inst.id.startswith("instance-") and inst.name == inst.id
    assert pushed.new_instance(version_id=version.id, id=inst.id, exist_ok=True).id == inst.id
    pushed.delete_instance(inst.id)
    pushed.delete_version(version.id)


def test_devint_is_listed_and_valid(pushed: cloud.Application) -> None:
    devint = {i.id: i for i in pushed.list_instances()}.get("devint")
    assert devint is not None and devint.application_id == pushed.id


def test_update_instance_lock(pushed: cloud.Application) -> None:
    version = pushed.new_version(id=unique("v"))
    inst = pushed.new_instance(version_id=version.id, id=unique("i"))
    assert pushed.update_instance(inst.id, locked=True).locked is True


def test_deleting_a_version_in_use_is_a_conflict(pushed: cloud.Application) -> None:
    version = pushed.new_version(id=unique("v"))
    inst = pushed.new_instance(version_id=version.id, id=unique("i"))
    with pytest.raises(requests.HTTPError) as err:
        pushed.delete_version(version.id)
    assert err.value.response.status_code == 409 and inst.id in err.value.response.json()["error"]
    pushed.delete_instance(inst.id)
    pushed.delete_version(version.id)
    assert not pushed.version_exists(version.id)


def test_missing_things_are_404_with_our_message(
    client: cloud.Client, pushed: cloud.Application
) -> None:
    missing = unique("nov")
    with pytest.raises(requests.HTTPError) as err:
        pushed.version(missing)
    assert err.value.response is not None and err.value.response.status_code == 404
    message = err.value.response.json()["error"]
    assert missing in message
    assert "status code 404" in str(err.value) and missing in str(err.value)

    with pytest.raises(requests.HTTPError) as err:
        pushed.instance(unique("noi"))
    assert err.value.response.status_code == 404 and "error" in err.value.response.json()

    with pytest.raises(requests.HTTPError) as err:
        cloud.Application.get(client=client, id=unique("noapp"))
    assert err.value.response.status_code == 404 and "error" in err.value.response.json()


def test_wrong_key_is_rejected(daemon: Daemon) -> None:
    bad = cloud.Client(api_key="not-the-key", url=daemon.url)
    with pytest.raises(requests.HTTPError) as err:
        cloud.list_applications(bad)
    assert err.value.response.status_code == 401
