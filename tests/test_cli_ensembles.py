"""``orch ensemble ...`` and ``orch app run -e`` as a subprocess against the session daemon.

The knapsack's value depends on its ``scale`` option (1: 444, 16: 236 on the sample
input), so which child an ensemble returns is known in advance: maximize picks scale1.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.cli_run import orch, orch_json
from tests.helpers import SAMPLES, Daemon, create_app, push_dir, unique

KNAPSACK_INPUT = SAMPLES / "knapsack" / "input.json"
RUN_ID = re.compile(r"^run-[0-9a-z]+$")
BEST = "--instance-ids scale1,scale16 --statistics-path $.result.value --objective maximize"


def rows(text: str, first: str = "") -> list[list[str]]:
    """The cells of the table rows in ``text`` that start with ``first``."""
    found = [[c.strip() for c in line.split("│")] for line in text.splitlines() if "│" in line]
    return [cells for cells in found if cells[0].startswith(first)]


@pytest.fixture(scope="module")
def app_id(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The knapsack with instances scale1 and scale16 on version v1."""
    with daemon.client() as api:
        app_id = create_app(api, unique("ens"))
        push_dir(api, app_id, SAMPLES / "knapsack", tmp_path_factory.mktemp("pkg"))
        api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"})
        for scale in ("1", "16"):
            body: dict[str, Any] = {"id": f"scale{scale}", "version_id": "v1"}
            body["configuration"] = {"options": {"scale": scale}}
            assert api.post(f"/v1/applications/{app_id}/instances", json=body).status_code == 201
    return app_id


@pytest.fixture(scope="module")
def best(daemon: Daemon, app_id: str) -> str:
    orch(daemon, f"ensemble create -a {app_id} -e best -n Best {BEST}")
    return "best"


def test_create_get_list_update_delete(daemon: Daemon, app_id: str, tmp_path: Path) -> None:
    made = orch_json(daemon, f"ensemble create -a {app_id} -e crud --repetitions 2 {BEST}")
    assert [(g["id"], g["instance_id"], g["repetitions"]) for g in made["run_groups"]] == [
        ("scale1", "scale1", 2),
        ("scale16", "scale16", 2),
    ]
    (rule,) = made["rules"]
    assert (rule["id"], rule["objective"], rule["index"]) == ("result.value", "maximize", 0)
    assert rule["tolerance"] == {"value": 0.0, "type": "absolute"}
    shown = orch(daemon, f"ensemble get -a {app_id} -e crud").stdout
    assert re.search(r"child runs\s+4", shown)
    assert rows(shown, "scale16")[0] == ["scale16", "scale16", "-", "2"]
    assert rows(shown, "0")[0] == ["0", "result.value", "$.result.value", "maximize", "0"]
    listed = rows(orch(daemon, f"ensemble list -a {app_id}").stdout, "crud")
    assert listed[0][1:4] == ["crud", "scale1 x2, scale16 x2", "maximize $.result.value"]
    renamed = orch_json(daemon, f"ensemble update -a {app_id} -e crud -n Renamed")
    assert renamed["name"] == "Renamed" and renamed["run_groups"] == made["run_groups"]

    # A file (what get --json prints) plus flags that add a second rule.
    saved = tmp_path / "crud.json"
    saved.write_text(orch(daemon, f"ensemble get -a {app_id} -e crud --json").stdout)
    low = {"id": "low", "statistics_path": "$.result.value", "objective": "minimize",
           "tolerance": {"value": 0.1, "type": "relative"}, "index": 1}  # fmt: skip
    rules = f"--rules {json.dumps(low, separators=(',', ':'))}"  # no spaces: one argument
    copy = orch_json(daemon, f"ensemble create -a {app_id} -e copy --file", saved, rules)
    assert copy["name"] == "Renamed" and len(copy["rules"]) == 2
    assert copy["rules"][1]["tolerance"] == {"value": 0.1, "type": "relative"}

    refused = orch(daemon, f"ensemble delete -a {app_id} -e crud", code=1)
    assert "add --confirm" in refused.stderr
    assert (
        "deleted ensemble definition crud"
        in orch(daemon, f"ensemble delete -a {app_id} -e crud --confirm").stderr
    )
    gone = orch(daemon, f"ensemble get -a {app_id} -e crud", code=1)
    assert "error: ensemble definition 'crud' not found" in gone.stderr and gone.stdout == ""
    assert "crud" not in [d["id"] for d in orch_json(daemon, f"ensemble list -a {app_id}")]


def test_run_wait_prints_the_winners_output(daemon: Daemon, app_id: str, best: str) -> None:
    proc = orch(daemon, f"app run -a {app_id} -e {best} -i", KNAPSACK_INPUT, "--wait")
    assert json.loads(proc.stdout)["statistics"]["result"]["value"] == 444
    line = r"ensemble best: winner run-\w+ \(run group scale1, repetition 0\)"
    winner = re.search(line, proc.stderr)
    assert winner and "of 2 child runs (2 succeeded)" in proc.stderr, proc.stderr
    full = orch_json(daemon, f"app run -a {app_id} -e {best} -i", KNAPSACK_INPUT, "--wait")
    ensemble: dict[str, Any] = full["ensemble"]
    assert full["metadata"]["run_type"]["type"] == "ensemble"
    assert ensemble["ensemble_definition_id"] == "best" and ensemble["selected_run_id"]


def test_metadata_shows_children_winner_and_parent(daemon: Daemon, app_id: str, best: str) -> None:
    run_id = orch(daemon, f"app run -a {app_id} -e {best} -i", KNAPSACK_INPUT).stdout.strip()
    assert RUN_ID.match(run_id)
    orch(daemon, f"app run result -a {app_id} -r {run_id} --wait")
    shown = orch(daemon, f"app run metadata -a {app_id} -r {run_id}")
    children = {r[1]: r for r in rows(shown.stdout, "run-")}
    # run, run group, repetition, status, result.value, winner
    assert children["scale1"][2:] == ["0", "succeeded", "444", "yes"]
    assert children["scale16"][2:] == ["0", "succeeded", "236", "-"]
    assert f"winner {children['scale1'][0]}" in shown.stderr
    assert re.search(r"ensemble\s+definition best", shown.stdout)
    child = orch(daemon, f"app run metadata -a {app_id} -r {children['scale16'][0]}").stdout
    assert re.search(rf"ensemble\s+child of run {run_id}", child)
    again = orch(daemon, f"ensemble result -a {app_id} -r {run_id}")
    assert {r[0]: r[1:] for r in rows(again.stdout, "run-")} == {
        r[0]: r[1:] for r in children.values()
    }
    result = orch_json(daemon, f"ensemble result -a {app_id} -r {run_id}")
    assert result["selected_run_id"] == children["scale1"][0]
    assert {c["run_group_id"] for c in result["child_runs"]} == {"scale1", "scale16"}


def test_result_of_a_child_run_names_its_ensemble_run(
    daemon: Daemon, app_id: str, best: str
) -> None:
    """Given a child run, ``ensemble result`` said only "not an ensemble run"; the child's
    metadata names its ensemble run (``parent_run_id``): the error says so, with the
    command that shows that run's result."""
    run_id = orch(daemon, f"app run -a {app_id} -e {best} -i", KNAPSACK_INPUT).stdout.strip()
    orch(daemon, f"app run result -a {app_id} -r {run_id} --wait")
    child = orch_json(daemon, f"ensemble result -a {app_id} -r {run_id}")["child_runs"][0]["id"]
    proc = orch(daemon, f"ensemble result -a {app_id} -r {child}", code=1)
    hint = f"orch ensemble result -a {app_id} -r {run_id} --home {daemon.home}"
    assert proc.stdout == ""
    assert proc.stderr == (
        f"error: run {child} is a child run of ensemble run {run_id}; its result: {hint}\n"
    )
    assert child in orch(daemon, f"ensemble result -a {app_id} -r {run_id}").stdout


def test_bad_input_is_a_clear_error(daemon: Daemon, app_id: str, best: str) -> None:
    def error(args: str, *more: str | Path, code: int = 1) -> str:
        proc = orch(daemon, args, *more, code=code)
        assert proc.stdout == ""
        return proc.stderr

    create = f"ensemble create -a {app_id}"
    assert "no rules: give --statistics-path" in error(f"{create} --instance-ids scale1", code=2)
    assert "--run-groups 'nope' is not valid JSON" in error(
        f"{create} --run-groups nope", code=2
    )  # a mistake on the command line, as a rule with half its flags (below)
    assert "needs both --statistics-path and --objective" in error(
        f"{create} --instance-ids scale1 --statistics-path $.result.value", code=2
    )
    assert "instance 'ghost' not found" in error(
        f"{create} --instance-ids ghost --statistics-path $.x --objective minimize"
    )
    assert "statistics_path must start with '$.'" in error(
        f"{create} --instance-ids scale1 --statistics-path result --objective minimize"
    )
    assert "ensemble definition 'nosuch' not found" in error(
        f"app run -a {app_id} -e nosuch -i", KNAPSACK_INPUT
    )
    assert "leave out --instance-id" in error(
        f"app run -a {app_id} -e {best} --instance-id scale1 -i", KNAPSACK_INPUT, code=2
    )
    plain = orch(daemon, f"app run -a {app_id} --instance-id scale1 -i", KNAPSACK_INPUT)
    assert "is not an ensemble run" in error(f"ensemble result -a {app_id} -r {plain.stdout}")
    names = [d["id"] for d in orch_json(daemon, f"ensemble list -a {app_id}")]
    assert "ghost" not in names and len(names) == len(set(names))


def test_a_file_and_flags_make_one_definition(tmp_path: Path) -> None:
    """In-process: the file's groups and rules come first, the flags' are added after."""
    from orchestrator.cli.ensemble_spec import GroupFlags, RuleFlags, definition_body

    saved = tmp_path / "d.json"
    saved.write_text(json.dumps({
        "id": "kept", "application_id": "other-app", "created_at": "2026-01-01T00:00:00Z",
        "run_groups": [{"id": "a", "instance_id": "a"}],
        "rules": [{"id": "first", "statistics_path": "$.x", "objective": "minimize",
                   "tolerance": {"value": 1, "type": "absolute"}, "index": 0}],
    }))  # fmt: skip
    body = definition_body(
        saved,
        ['[{"id": "b", "instance_id": "b"}]'],
        None,
        GroupFlags(["c"], 3, ["k=v"]),
        RuleFlags("$.result.custom[0].gap", "maximize", 0.5, "relative"),
    )
    assert "application_id" not in body and "created_at" not in body and body["id"] == "kept"
    assert [(g["id"], g.get("repetitions")) for g in body["run_groups"]] == [
        ("a", None),
        ("b", None),
        ("c", 3),
    ]
    assert body["run_groups"][2]["options"] == {"k": "v"}
    added = body["rules"][1]
    assert (added["id"], added["index"]) == ("result.custom_0_.gap", 1)
    assert added["tolerance"] == {"value": 0.5, "type": "relative"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "is not valid JSON"),
        ("[]", "must hold a JSON object"),
        ('{"run_groups": {"id": "a"}}', "run_groups must be an array of objects"),
        (b"\xff{}", "is not UTF-8 text (invalid start byte at byte 0)"),
    ],
)
def test_a_bad_file_is_refused_before_anything_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes, message: str
) -> None:
    import typer

    from orchestrator.cli.ensemble_spec import GroupFlags, RuleFlags, definition_body

    saved = tmp_path / "d.json"
    saved.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(typer.Exit) as exit_:
        definition_body(saved, None, None, GroupFlags(), RuleFlags())
    assert exit_.value.exit_code == 1 and message in capsys.readouterr().err


def test_a_tolerance_that_is_no_number_is_refused(daemon: Daemon, app_id: str) -> None:
    """``--tolerance nan`` used to be stored (as null), print a traceback, and hang every
    run of the ensemble."""
    for bad in ("nan", "inf"):  # a negative one is the CLI's own usage error
        create = f"ensemble create -a {app_id} -e bad{bad} {BEST} --tolerance={bad}"
        done = orch(daemon, create, code=1)
        assert "tolerance must be a number, not negative" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    listed = orch(daemon, f"ensemble list -a {app_id}").stdout
    assert "badnan" not in listed and "badinf" not in listed
