"""Migration 13 (``_SDK_FIELDS``) on every older database: its rows come forward with the
new fields unset, and the fields round-trip through the repositories afterwards."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.errors import Invalid
from orchestrator.models import Queuing, Run
from orchestrator.store import Store
from orchestrator.store.migrations import MIGRATIONS
from tests.old_databases import APP, EXE, OLD_RUNS, write_old


@pytest.mark.parametrize("version", range(1, len(MIGRATIONS)))
async def test_an_older_database_gains_the_sdk_fields(tmp_path: Path, version: int) -> None:
    path = tmp_path / "orch.db"
    write_old(path, version)
    store = Store(path)
    await store.open()
    try:
        app = await store.read.apps.get(APP)
        instance = await store.read.instances.get(APP, "prod")
        assert app is not None and app.default_experiment_instance_id is None
        assert instance is not None and instance.queuing == Queuing()
        runs = await store.read.runs.list(APP, limit=100)
        assert {r.id for r in runs} == set(OLD_RUNS)
        assert all(r.cloned_run_id is None for r in runs)

        app.default_experiment_instance_id = "prod"
        clone = Run("run-new-clone", APP, "prod", EXE, cloned_run_id="run-old-ok")
        async with store.write() as w:
            await w.apps.update(app)
            await w.instances.update(replace(instance, queuing=Queuing(3, True)))
            await w.runs.insert(clone)
        app_after = await store.read.apps.get(APP)
        assert app_after is not None and app_after.default_experiment_instance_id == "prod"
        instance_after = await store.read.instances.get(APP, "prod")
        assert instance_after is not None and instance_after.queuing == Queuing(3, True)
        clone_after = await store.read.runs.get(clone.id)
        assert clone_after is not None and clone_after.cloned_run_id == "run-old-ok"
    finally:
        await store.close()


def test_queuing_checks_its_priority() -> None:
    assert Queuing.from_dict(Queuing(9, False).to_dict()) == Queuing(9, False)
    assert Queuing().to_dict() == {}
    for bad in (0, 10, True):
        with pytest.raises(Invalid, match="priority must be between 1 and 9"):
            Queuing(bad)
