"""Promote, push and options as a developer uses them day to day (the daily walk):
promote takes an existing version and an existing ``production``, a push of what devint
runs already is no event, and an option the version does not declare is passed on with
a note naming it (and what was likely meant)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx

from orchestrator.packaging.build import build_package
from orchestrator.packaging.manifest import Manifest
from orchestrator.runs.options import Undeclared, undeclared_options
from tests.cli_run import new_app, orch, orch_json
from tests.helpers import SAMPLES, Daemon, wait_for

KNAPSACK = SAMPLES / "knapsack"
KNAPSACK_INPUT = KNAPSACK / "input.json"


def edited_knapsack(tmp_path: Path, mark: str) -> Path:
    """The knapsack with another package hash: a second push, as after an edit."""
    folder = tmp_path / f"knapsack-{mark}"
    shutil.copytree(KNAPSACK, folder)
    with (folder / "main.py").open("a") as fh:
        fh.write(f"\n# edit {mark}\n")
    return folder


def devint_moves(daemon: Daemon, app_id: str) -> list[dict[str, str]]:
    items = orch_json(daemon, f"app history -a {app_id}")["items"]
    return [m for m in items if m["pointer"] == "devint"]


def instance_moves(daemon: Daemon, app_id: str, instance_id: str) -> list[dict[str, str]]:
    items = orch_json(daemon, f"app history -a {app_id}")["items"]
    return [m for m in items if m["pointer"] == f"instance:{instance_id}"]


# --- promote -------------------------------------------------------------------------------


def test_promote_of_an_existing_version_points_the_instance_at_it(
    daemon: Daemon, tmp_path: Path
) -> None:
    """``version 'v1' already exists`` with no hint was all ``promote -v v1`` said."""
    app_id = new_app(daemon, KNAPSACK)
    orch(daemon, f"app version create -a {app_id} -v v1 -n First")
    v1_exe = orch_json(daemon, f"app version get -a {app_id} -v v1")["executable"]["id"]

    first = orch(daemon, f"app promote -a {app_id} -v v1")
    assert "v1 (existing: no new version)" in first.stdout, first.stdout
    assert "production (created)" in first.stdout, first.stdout

    orch(daemon, f"app push -a {app_id} --app-dir", edited_knapsack(tmp_path, "two"))
    orch(daemon, f"app promote -a {app_id} -v v2")
    back = orch_json(daemon, f"app promote -a {app_id} -v v1")
    assert back["created_version"] is False and back["moved_instance"] is True
    assert back["instance"]["id"] == "production" and back["instance"]["version_id"] == "v1"
    assert back["version"]["executable"]["id"] == v1_exe  # v1 as it was, not the last push
    assert back["version"]["name"] == "First"
    versions = orch_json(daemon, f"app version list -a {app_id}")
    assert sorted(v["id"] for v in versions) == ["v1", "v2"]

    moves = len(instance_moves(daemon, app_id, "production"))
    again = orch(daemon, f"app promote -a {app_id} -v v1")
    assert "production (already runs it)" in again.stdout, again.stdout
    assert len(instance_moves(daemon, app_id, "production")) == moves  # nothing moved

    renamed = orch(daemon, f"app promote -a {app_id} -v v1 -n Other", code=1)
    assert "already exists" in renamed.stderr and "'First'" in renamed.stderr, renamed.stderr
    assert orch_json(daemon, f"app version get -a {app_id} -v v1")["name"] == "First"


def test_promote_without_a_default_moves_an_existing_production(
    daemon: Daemon, tmp_path: Path
) -> None:
    """It made ``production-2`` beside ``production`` and made that the default."""
    app_id = new_app(daemon, KNAPSACK)
    orch(daemon, f"app version create -a {app_id} -v v1")
    orch(daemon, f"app instance create -a {app_id} --instance-id production -v v1")
    orch(daemon, f"app push -a {app_id} --app-dir", edited_knapsack(tmp_path, "two"))
    shown = orch(daemon, f"app promote -a {app_id} -v v2")
    assert "production (moved)" in shown.stdout, shown.stdout
    assert orch_json(daemon, f"app get -a {app_id}")["default_instance"] == "production"
    ids = [i["id"] for i in orch_json(daemon, f"app instance list -a {app_id}")]
    assert sorted(ids) == ["devint", "production"], ids
    production = orch_json(daemon, f"app instance get -a {app_id} --instance-id production")
    assert production["version_id"] == "v2"


def test_promote_refuses_a_locked_production_and_changes_nothing(daemon: Daemon) -> None:
    app_id = new_app(daemon, KNAPSACK)
    orch(daemon, f"app version create -a {app_id} -v v1")
    orch(daemon, f"app instance create -a {app_id} --instance-id production -v v1")
    orch(daemon, f"app instance update -a {app_id} --instance-id production --lock")
    refused = orch(daemon, f"app promote -a {app_id} -v v2", code=1)
    assert "locked" in refused.stderr, refused.stderr
    assert orch_json(daemon, f"app get -a {app_id}")["default_instance"] is None
    assert [v["id"] for v in orch_json(daemon, f"app version list -a {app_id}")] == ["v1"]


# --- push of what devint runs ----------------------------------------------------------------


def test_a_push_of_what_devint_runs_is_unchanged_and_no_history_row(
    daemon: Daemon, tmp_path: Path
) -> None:
    app_id = new_app(daemon, KNAPSACK)
    sha = orch_json(daemon, f"app get -a {app_id}")["executable_id"]
    assert len(devint_moves(daemon, app_id)) == 1

    again = orch(daemon, f"app push -a {app_id} --app-dir", KNAPSACK)
    assert f"unchanged: devint is still {sha[:12]}" in again.stderr, again.stderr
    assert "devint now runs it" not in again.stderr
    watched = orch(daemon, f"app push -a {app_id} --watch --max-pushes 1 --app-dir", KNAPSACK)
    assert f"unchanged: devint is still {sha[:12]}" in watched.stderr, watched.stderr
    as_json = orch_json(daemon, f"app push -a {app_id} --app-dir", KNAPSACK)
    assert as_json["unchanged"] is True and as_json["executable"]["id"] == sha

    # the push directory: the same package dropped in is filed, and moves nothing
    archive = build_package(KNAPSACK, tmp_path / "knapsack.tar.gz").path
    inbox = daemon.home / "push" / app_id
    staged = inbox / "knapsack.tar.gz.tmp"
    staged.write_bytes(archive.read_bytes())
    os.rename(staged, inbox / "knapsack.tar.gz")
    wait_for(lambda: list((inbox / ".done").glob("*knapsack.tar.gz")))
    assert len(devint_moves(daemon, app_id)) == 1

    changed = orch(daemon, f"app push -a {app_id} --app-dir", edited_knapsack(tmp_path, "x"))
    assert "devint now runs it" in changed.stderr  # a real change still moves devint
    moves = devint_moves(daemon, app_id)
    assert len(moves) == 2 and moves[0]["from"] == sha != moves[0]["to"]


# --- options the version does not declare --------------------------------------------------


def test_undeclared_is_decided_in_one_place_with_a_did_you_mean() -> None:
    manifest = Manifest.load(KNAPSACK / "app.yaml")  # duration, scale, sleep
    found = undeclared_options(manifest, ["scale", "scal", "bogus"])
    assert found == [Undeclared("scal", "scale"), Undeclared("bogus", None)]
    assert found[0].note("version v1") == (
        "option 'scal' is not declared in the app.yaml of version v1 (did you mean "
        "'scale'?); it is passed to the model as given"
    )


def test_a_run_with_an_undeclared_option_gets_a_note_and_still_runs(daemon: Daemon) -> None:
    app_id = new_app(daemon, KNAPSACK)
    sha = orch_json(daemon, f"app get -a {app_id}")["executable_id"]
    proc = orch(
        daemon, f"app run -a {app_id} -o scal=2 -o bogus=1 -o sleep=0 -w -i", KNAPSACK_INPUT
    )
    assert (
        f"note: option 'scal' is not declared in the app.yaml of devint's push {sha[:12]} "
        "(did you mean 'scale'?); it is passed to the model as given"
    ) in proc.stderr, proc.stderr
    assert "note: option 'bogus' is not declared" in proc.stderr
    assert "'bogus' is not declared in the app.yaml of devint's push" in proc.stderr
    assert "'sleep'" not in proc.stderr  # declared: no note

    orch(daemon, f"app version create -a {app_id} -v v1")
    quiet = orch(daemon, f"app instance create -a {app_id} --instance-id plain -v v1 -o scale=2")
    assert "note:" not in quiet.stderr
    on_version = orch(
        daemon, f"app run -a {app_id} --instance-id plain -o durations=1 -i", KNAPSACK_INPUT
    )
    assert "of version v1 (did you mean 'duration'?)" in on_version.stderr, on_version.stderr
    assert on_version.stdout.strip().startswith("run-")  # stdout stays the run ID alone


def test_an_instance_with_an_undeclared_option_gets_a_note(
    daemon: Daemon, api: httpx.Client
) -> None:
    app_id = new_app(daemon, KNAPSACK)
    orch(daemon, f"app version create -a {app_id} -v v1")
    made = orch(daemon, f"app instance create -a {app_id} --instance-id cand -v v1 -o restarts=5")
    assert (
        "note: option 'restarts' is not declared in the app.yaml of version v1; "
        "it is passed to the model as given"
    ) in made.stderr, made.stderr
    updated = orch(daemon, f"app instance update -a {app_id} --instance-id cand -o scal=3")
    assert "option 'scal' is not declared" in updated.stderr and "'scale'?" in updated.stderr
    renamed = orch(daemon, f"app instance update -a {app_id} --instance-id cand -n Cand")
    assert "note:" not in renamed.stderr  # options untouched: said when they were set
    # the SDK's GET + PUT round trip: the answer is the instance, with orch's field beside
    got = api.get(f"/v1/applications/{app_id}/instances/cand").json()
    assert "undeclared_options" not in got
    echoed = api.put(f"/v1/applications/{app_id}/instances/cand", json=got).json()
    assert [u["name"] for u in echoed["undeclared_options"]] == ["scal"]
    assert echoed["configuration"]["options"] == {"scal": "3"}
