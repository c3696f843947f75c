"""A batch experiment of one instance with two option sets, as a developer runs it to see
which set is better: one summary row per (instance, option set), a baseline that names
one of them (``prod:exact``), and a note for an option no app.yaml declares.

The knapsack's ``scale`` option divides the weights before solving: ``scale=8`` finds a
lower value than ``scale=1`` on these inputs (many light items), so the two option sets
of one instance give two different result.value means.
"""

from __future__ import annotations

import csv
import io
import json
import random
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cli_run import orch
from tests.helpers import SAMPLES, Daemon, create_app, push_dir, unique

SETS = json.dumps({"exact": {"scale": "1"}, "coarse": {"scale": "8"}})


def _input(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    items = [
        {"id": f"i{k}", "value": rng.randint(10, 100), "weight": rng.randint(2, 12)}
        for k in range(30)
    ]
    return {"weight_capacity": 80, "items": items}


@pytest.fixture(scope="module")
def app_id(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The knapsack as version v1 with instance prod (no options of its own), and an input
    set "three" of three inputs."""
    with daemon.client() as api:
        app_id = create_app(api, unique("sets"))
        push_dir(api, app_id, SAMPLES / "knapsack", tmp_path_factory.mktemp("pkg"))
        api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"})
        body = {"id": "prod", "version_id": "v1"}
        assert api.post(f"/v1/applications/{app_id}/instances", json=body).status_code == 201
    folder = tmp_path_factory.mktemp("inputs")
    for seed in range(3):
        (folder / f"case-{seed}.json").write_text(json.dumps(_input(seed)))
    orch(daemon, f"experiment input-set create -a {app_id} -s three -n Three --dir", folder)
    return app_id


@pytest.fixture(scope="module")
def two_sets(daemon: Daemon, app_id: str) -> subprocess.CompletedProcess[str]:
    """prod with the exact and the coarse option set, compared to prod:exact, waited for."""
    return orch(
        daemon,
        f"experiment batch start -a {app_id} -b sets -s three --instance-ids prod",
        ["--option-sets", SETS],
        "--baseline prod:exact --objective max --wait --json",
    )


def test_two_option_sets_of_one_instance_are_two_summary_rows(
    daemon: Daemon, app_id: str, two_sets: subprocess.CompletedProcess[str], tmp_path: Path
) -> None:
    summary = json.loads(two_sets.stdout)
    rows = {t["target"]: t for t in summary["targets"]}
    assert list(rows) == ["prod:exact", "prod:coarse"], rows.keys()
    exact, coarse = (rows[n]["metrics"]["result.value"] for n in ("prod:exact", "prod:coarse"))
    assert exact["count"] == coarse["count"] == 3
    assert exact["mean"] > coarse["mean"]  # scale 8 finds less: the two are not pooled
    (compared,) = summary["comparisons"]
    assert (compared["target"], compared["baseline"]) == ("prod:coarse", "prod:exact")
    assert (compared["paired"], compared["losses"]) == (3, 3)

    table = orch(daemon, f"experiment batch get -a {app_id} -b sets").stdout
    assert "prod:exact" in table and "prod:coarse" in table
    assert "vs baseline prod:exact" in table
    as_csv = orch(daemon, f"experiment batch get -a {app_id} -b sets --csv").stdout
    targets = {r["target"] for r in csv.DictReader(io.StringIO(as_csv))}
    assert targets == {"prod:exact", "prod:coarse"}
    report = tmp_path / "sets.html"
    orch(daemon, f"experiment batch report -a {app_id} -b sets --html", report)
    assert "prod:coarse" in report.read_text() and "Against baseline prod:exact" in (
        report.read_text()
    )


def test_the_gate_names_the_option_sets_it_compares(
    daemon: Daemon, app_id: str, two_sets: subprocess.CompletedProcess[str]
) -> None:
    gated = orch(
        daemon,
        f"experiment batch get -a {app_id} -b sets --wait",
        ["--fail-if", "result.value < baseline"],
        code=1,
    )
    assert "against baseline 'prod:exact'" in gated.stderr, gated.stderr
    assert "prod:coarse on input 'case-0.json'" in gated.stderr, gated.stderr


def test_a_bare_instance_with_two_option_sets_is_refused_with_the_choices(
    daemon: Daemon, app_id: str, two_sets: subprocess.CompletedProcess[str], tmp_path: Path
) -> None:
    start = f"experiment batch start -a {app_id} -b {unique('amb')} -s three --instance-ids prod"
    refused = orch(daemon, start, ["--option-sets", SETS], "--baseline prod", code=1)
    assert (
        "baseline 'prod' is ambiguous: it ran 2 option sets; name one as TARGET:OPTION_SET:"
        " prod:exact, prod:coarse" in refused.stderr
    ), refused.stderr
    summary = orch(
        daemon,
        f"experiment batch report -a {app_id} -b sets --baseline prod --html",
        tmp_path / "never.html",
        code=1,
    )
    assert "'prod' is ambiguous" in summary.stderr and "prod:exact, prod:coarse" in summary.stderr


def test_a_stored_bare_baseline_of_two_option_sets_still_shows_its_summary(
    daemon: Daemon, app_id: str, two_sets: subprocess.CompletedProcess[str]
) -> None:
    """An experiment started before option sets had rows of their own could keep a bare
    instance as its baseline: its summary and page still show, comparing nothing (as it
    did then), instead of answering the ambiguity error of a baseline asked for now."""
    exp_id = unique("old")
    orch(
        daemon,
        f"experiment batch start -a {app_id} -b {exp_id} -s three --instance-ids prod",
        ["--option-sets", SETS],
        "--baseline prod:exact --wait --json",
    )
    with sqlite3.connect(daemon.home / "orch.db") as db:  # as an older daemon stored it
        db.execute("UPDATE experiments SET baseline = 'prod' WHERE id = ?", (exp_id,))
    with daemon.client() as api:
        path = f"/v1/applications/{app_id}/experiments/batch/{exp_id}/summary"
        answer = api.get(path)
        assert answer.status_code == 200, answer.text
        assert answer.json()["comparisons"] == []
        assert api.get(path, params={"baseline": "prod"}).status_code == 400


def test_an_undeclared_option_in_an_option_set_gets_a_note(daemon: Daemon, app_id: str) -> None:
    exp_id = unique("typo")
    sets = json.dumps({"typo": {"scal": "8"}})
    start = f"experiment batch start -a {app_id} -b {exp_id} -s three --instance-ids prod --json"
    made = orch(daemon, start, ["--option-sets", sets])
    note = (
        "note: option set 'typo': option 'scal' is not declared in the app.yaml of version v1"
        " (did you mean 'scale'?); it is passed to the model as given"
    )
    assert note in made.stderr, made.stderr
    (found,) = json.loads(made.stdout)["undeclared_options"]
    assert (found["name"], found["did_you_mean"], found["option_set"]) == ("scal", "scale", "typo")

    scenario = orch(
        daemon,
        f"experiment scenario create -a {app_id} -b {unique('scn')}",
        ["--scenario", "id=s,instance=prod,input-set=three,scal=1|2"],
    )
    assert "option 'scal' is not declared" in scenario.stderr, scenario.stderr
    declared = orch(daemon, start.replace(exp_id, unique("ok")), ["--option-sets", SETS])
    assert "note:" not in declared.stderr, declared.stderr
