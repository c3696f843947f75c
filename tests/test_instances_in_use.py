"""Deleting an instance that a live test or an ensemble definition still uses: refused
with a 409 naming every user, as a version is while an instance points at it.

Over HTTP against the session daemon, but for a switchback test whose units ran out by
the clock: that needs a plan in the past, which only the store can write."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from orchestrator.config import Settings
from orchestrator.ensemble_models import EnsembleDefinition, EvaluationRule, RunGroup
from orchestrator.errors import Conflict, NotFound
from orchestrator.experiments import ensembles, shadow, switchback
from orchestrator.experiments.switchback_plan import stamp, utc_now
from orchestrator.home import Home
from orchestrator.models import App, EnvStatus, Executable, Instance, Version
from orchestrator.registry.instances import InstanceService
from orchestrator.runs.service import RunService
from orchestrator.shadow_models import Comparison, ShadowTest
from orchestrator.store import Store
from orchestrator.switchback_models import Arm, Plan, SwitchbackStatus, SwitchbackTest
from tests.helpers import create_app, push_dir, write_app

ENSEMBLE_RULE = {
    "id": "best",
    "statistics_path": "$.result.value",
    "objective": "maximize",
    "tolerance": {"value": 0, "type": "absolute"},
    "index": 0,
}


@pytest.fixture
def app_id(api: httpx.Client, tmp_path: Path) -> str:
    """An app with instances ``base`` and ``rough`` on one version."""
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp_path / "app", "print('{}')\n"), tmp_path)
    assert api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"}).status_code == 201
    for instance_id in ("base", "rough"):
        body = {"id": instance_id, "version_id": "v1"}
        made = api.post(f"/v1/applications/{app_id}/instances", json=body)
        assert made.status_code == 201, made.text
    return app_id


def _made(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code in (200, 201), r.text
    body: dict[str, Any] = r.json()
    return body


def _switchback(api: httpx.Client, app_id: str, test_id: str = "swb") -> None:
    body = {
        "id": test_id,
        "comparison": {"baseline_instance_id": "base", "candidate_instance_id": "rough"},
        "generate_random_plan": {"unit_duration_minutes": 60, "units": 2},
    }
    _made(api.post(f"/v1/applications/{app_id}/experiments/switchback", json=body))


def _shadow(api: httpx.Client, app_id: str, test_id: str = "shd") -> None:
    body = {
        "id": test_id,
        "comparisons": {"base": ["rough"]},
        "termination_events": {"maximum_runs": 10},
    }
    _made(api.post(f"/v1/applications/{app_id}/experiments/shadow", json=body))


def _ensemble(api: httpx.Client, app_id: str, definition_id: str = "best") -> None:
    body = {
        "id": definition_id,
        "run_groups": [
            {"id": "base", "instance_id": "base", "repetitions": 1},
            {"id": "rough", "instance_id": "rough", "repetitions": 1},
        ],
        "rules": [ENSEMBLE_RULE],
    }
    _made(api.post(f"/v1/applications/{app_id}/ensembles", json=body))


def _delete(
    api: httpx.Client, app_id: str, instance_id: str, force: bool = False
) -> httpx.Response:
    params = {"force": "true"} if force else {}
    return api.delete(f"/v1/applications/{app_id}/instances/{instance_id}", params=params)


def _refused(api: httpx.Client, app_id: str, instance_id: str, users: str) -> None:
    r = _delete(api, app_id, instance_id)
    assert r.status_code == 409, r.text
    assert r.json()["error"] == (
        f"instance {instance_id!r} is used by {users}; stop or delete them first"
    )
    assert api.get(f"/v1/applications/{app_id}/instances/{instance_id}").status_code == 200


def test_a_switchback_test_not_finished_keeps_both_its_instances(
    api: httpx.Client, app_id: str
) -> None:
    _switchback(api, app_id)
    for instance_id in ("base", "rough"):
        _refused(api, app_id, instance_id, "switchback test swb (draft)")
    _made(api.put(f"/v1/applications/{app_id}/experiments/switchback/swb/start"))
    for instance_id in ("base", "rough"):
        _refused(api, app_id, instance_id, "switchback test swb (started)")


def test_a_shadow_test_not_finished_keeps_its_baseline_and_candidates(
    api: httpx.Client, app_id: str
) -> None:
    _shadow(api, app_id)
    for instance_id in ("base", "rough"):
        _refused(api, app_id, instance_id, "shadow test shd (draft)")
    _made(api.put(f"/v1/applications/{app_id}/experiments/shadow/shd/start"))
    _refused(api, app_id, "rough", "shadow test shd (started)")


def test_an_ensemble_definition_keeps_its_instances_until_it_is_deleted(
    api: httpx.Client, app_id: str
) -> None:
    """Its run groups never change: without the instance every run of it would fail."""
    _ensemble(api, app_id)
    _refused(api, app_id, "rough", "ensemble definition best")
    assert api.delete(f"/v1/applications/{app_id}/ensembles/best").status_code == 204
    assert _delete(api, app_id, "rough").status_code == 204


def test_finished_tests_do_not_block(api: httpx.Client, app_id: str) -> None:
    _switchback(api, app_id)
    _made(api.put(f"/v1/applications/{app_id}/experiments/switchback/swb/start"))
    stop = {"intent": "complete"}
    _made(api.put(f"/v1/applications/{app_id}/experiments/switchback/swb/stop", json=stop))
    _shadow(api, app_id)
    _made(api.put(f"/v1/applications/{app_id}/experiments/shadow/shd/start"))
    stop = {"intent": "cancel"}
    _made(api.put(f"/v1/applications/{app_id}/experiments/shadow/shd/stop", json=stop))
    assert _delete(api, app_id, "rough").status_code == 204
    assert api.get(f"/v1/applications/{app_id}/instances/rough").status_code == 404


def test_every_user_is_named_and_force_does_not_skip_them(api: httpx.Client, app_id: str) -> None:
    """``--force`` is for the app's default instance only, as a version has no way past
    the instances that use it."""
    app = _made(api.get(f"/v1/applications/{app_id}")) | {"default_instance": "rough"}
    _made(api.put(f"/v1/applications/{app_id}", json=app))
    _switchback(api, app_id)
    _made(api.put(f"/v1/applications/{app_id}/experiments/switchback/swb/start"))
    _shadow(api, app_id)
    _ensemble(api, app_id)
    r = _delete(api, app_id, "rough", force=True)
    assert r.status_code == 409, r.text
    assert r.json()["error"] == (
        "instance 'rough' is used by switchback test swb (started), shadow test shd (draft),"
        " ensemble definition best; stop or delete them first"
    )
    assert _made(api.get(f"/v1/applications/{app_id}"))["default_instance"] == "rough"


async def _store_with(tmp_path: Path, *instance_ids: str) -> Store:
    """An open store with app ``app``, its version ``v1`` and instances on it."""
    store = Store(tmp_path / "orch.db")
    await store.open()
    async with store.write() as w:
        exe = Executable("a" * 64, 1, {}, "python", "py", EnvStatus.NONE)
        await w.executables.insert_if_missing(exe, "blobs/x")
        await w.apps.insert(App("app", "App", executable_id=exe.id))
        await w.versions.insert(Version("v1", "app", "v1", exe.id))
        for instance_id in instance_ids:
            await w.instances.insert(Instance(instance_id, "app", "v1", instance_id))
    return store


async def test_a_switchback_test_whose_units_ran_out_no_longer_counts(tmp_path: Path) -> None:
    """Its row says started until the test is next read, but by the clock it completed."""
    store, arms = (
        await _store_with(tmp_path, "base", "rough", "other"),
        (Arm.BASELINE, Arm.CANDIDATE),
    )
    try:
        async with store.write() as w:
            for test_id, candidate, start, minutes in (
                ("old", "rough", utc_now() - timedelta(hours=2), 1.0),
                ("now", "other", utc_now(), 60.0),
            ):
                plan = Plan(stamp(start), 1, minutes, arms)
                started = SwitchbackStatus.STARTED
                test = SwitchbackTest(test_id, "app", "base", candidate, minutes, 2, plan=plan)
                await w.switchback.insert(replace(test, status=started, started_at=plan.start))
        instances = InstanceService(store, Settings(home=Home(tmp_path)))
        await instances.delete("app", "rough")
        assert await store.read.instances.get("app", "rough") is None
        with pytest.raises(Conflict) as refused:
            await instances.delete("app", "base")
        assert refused.value.message == (
            "instance 'base' is used by switchback test now (started); stop or delete them first"
        )
    finally:
        await store.close()


FIRST_CHECKS = {  # the method, and how many calls of it check before the write
    "switchback": (switchback.SwitchbackTests, "_instance", 2),
    "shadow": (shadow.ShadowTests, "_comparisons", 1),
    "ensemble": (ensembles.EnsembleDefinitions, "_check", 1),
}


@pytest.mark.parametrize("kind", FIRST_CHECKS)
async def test_an_instance_deleted_while_a_test_is_made_is_not_named_by_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The delete lands after the creation's checks, before its write, where the delete's
    own check cannot see the test yet: the creation is refused, not stored naming nothing."""
    store = await _store_with(tmp_path, "base", "rough")
    try:
        instances = InstanceService(store, Settings(home=Home(tmp_path)))
        owner, name, calls = FIRST_CHECKS[kind]
        first_check, made = getattr(owner, name), []

        async def check_then_delete(*args: Any) -> Any:
            checked = await first_check(*args)
            made.append(args)
            if len(made) == calls:
                await instances.delete("app", "rough")
            return checked

        monkeypatch.setattr(owner, name, check_then_delete)
        with pytest.raises(NotFound, match="instance 'rough' not found"):
            await _create(kind, store, tmp_path)
        assert await store.read.switchback.list("app") == []
        assert await store.read.shadow_tests.list("app") == []
        assert await store.read.ensembles.list("app") == []
    finally:
        await store.close()


async def _create(kind: str, store: Store, tmp_path: Path) -> None:
    home = Home(tmp_path)
    if kind == "switchback":
        test = SwitchbackTest("t", "app", "base", "rough", 1.0, 2)
        await switchback.SwitchbackTests(store, home, utc_now).create(test)
    elif kind == "shadow":
        runs = cast(RunService, None)  # a draft without a start time runs nothing
        draft = ShadowTest("t", "app", "t", [Comparison("base", ("rough",))], 10)
        await shadow.ShadowTests(store, home, runs).create(draft)
    else:
        groups = [RunGroup("fine", "base"), RunGroup("rough", "rough")]
        rules = [EvaluationRule("best", "$.result.value", "maximize")]
        await ensembles.EnsembleDefinitions(store).create(
            EnsembleDefinition("d", "app", groups, rules)
        )
