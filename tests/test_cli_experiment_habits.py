"""``orch experiment ...`` and ``orch ensemble create`` as a user who knows one command and
types its habits into the other: the objective's two spellings, waiting for an experiment
started earlier, usage errors (exit 2) for values no daemon is needed to refuse, counts
and articles in the messages, the baseline comparison in the CSV summary.

One knapsack app: instance "good" solves exactly, "worse" divides the weights by 8, which
on these inputs finds a lower value (so with objective max, "worse" loses on each input).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli_run import orch
from tests.helpers import Daemon, unique
from tests.hints import hint, paste
from tests.test_cli_experiment import knapsack_app

FAIL_IF_WORSE = ["--fail-if", "result.value < baseline * 0.99"]
COMPARISON_COLUMNS = [
    *("baseline", "pairs", "wins", "losses", "ties"),
    *("mean_change", "change_low", "change_high", "verdict"),
]


def knapsack(value: int) -> str:
    items = [{"id": f"i{k}", "value": value + k, "weight": 3} for k in range(6)]
    return json.dumps({"weight_capacity": 10, "items": items})


@pytest.fixture(scope="module")
def app_id(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The knapsack with instances good and worse, and input set "two" (2 inputs)."""
    app_id = knapsack_app(daemon, tmp_path_factory, "hab")
    folder = tmp_path_factory.mktemp("inputs")
    for value in (10, 20):
        (folder / f"v{value}.json").write_text(knapsack(value))
    orch(daemon, f"experiment input-set create -a {app_id} -s two -n Two --dir", folder)
    return app_id


@pytest.fixture(scope="module")
def one_input(daemon: Daemon, app_id: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Input set "one": what ``input-set create`` said of it."""
    path = tmp_path_factory.mktemp("one") / "one.json"
    path.write_text(knapsack(30))
    return orch(daemon, f"experiment input-set create -a {app_id} -s one -n One --file", path)


def test_batch_objective_takes_the_ensemble_words(daemon: Daemon, app_id: str) -> None:
    exp_id = unique("obj")
    start = f"experiment batch start -a {app_id} -b {exp_id} -s two --instance-ids good"
    orch(daemon, start, "--objective maximize")
    got = json.loads(orch(daemon, f"experiment batch get -a {app_id} -b {exp_id} --json").stdout)
    assert got["objective"] == "max"
    typo = orch(daemon, start, "--objective best", code=2)
    assert "'best' is not one of 'min', 'max'" in typo.stderr
    shown = " ".join(orch(daemon, "experiment batch start -h").stdout.split())
    assert "--objective <min|max>" in shown  # -h keeps the command's own words


def test_ensemble_objective_takes_the_experiment_words(daemon: Daemon, app_id: str) -> None:
    create = f"ensemble create -a {app_id} --instance-ids good --statistics-path $.result.value"
    for given, sent in (("max", "maximize"), ("min", "minimize"), ("maximize", "maximize")):
        made = json.loads(orch(daemon, create, "--objective", given, "--json").stdout)
        assert made["rules"][0]["objective"] == sent
    shown = " ".join(orch(daemon, "ensemble create -h").stdout.split())
    assert "--objective <minimize|maximize>" in shown  # -h keeps the command's own words


def test_batch_get_waits_and_gates_an_experiment_started_earlier(
    daemon: Daemon, app_id: str
) -> None:
    exp_id = unique("later")
    started = orch(
        daemon,
        f"experiment batch start -a {app_id} -b {exp_id} -s two --instance-ids good,worse",
        "--baseline good --objective max",
    )
    line = hint(started.stderr, "follow it with")
    assert line == f"orch experiment batch get -a {app_id} -b {exp_id} --home {daemon.home} --wait"
    assert "Runs by target" in paste(line).stdout  # waited: the summary is there
    get = f"experiment batch get -a {app_id} -b {exp_id}"
    gated = orch(daemon, get, "--wait", FAIL_IF_WORSE, code=1)
    assert "gate failed" in gated.stderr
    passed = orch(daemon, get, "-w", ["--fail-if", "result.value < baseline * 0.1"])
    assert "gate passed" in passed.stderr
    no_wait = orch(daemon, get, FAIL_IF_WORSE, code=2)
    assert "--fail-if needs --wait" in no_wait.stderr


def test_batch_get_gate_needs_the_experiment_s_baseline(daemon: Daemon, app_id: str) -> None:
    exp_id = unique("nobase")
    orch(daemon, f"experiment batch start -a {app_id} -b {exp_id} -s two --instance-ids good")
    refused = orch(
        daemon, f"experiment batch get -a {app_id} -b {exp_id} --wait", FAIL_IF_WORSE, code=1
    )
    assert f"experiment {exp_id} has none" in refused.stderr


def test_scenario_get_waits_for_a_test_created_earlier(daemon: Daemon, app_id: str) -> None:
    test_id = unique("scn")
    made = orch(
        daemon,
        f"experiment scenario create -a {app_id} -b {test_id}",
        "--scenario id=plain,instance=good,input-set=two",
    )
    line = hint(made.stderr, "follow it with")
    assert line.endswith(" --wait")
    shown = paste(line).stdout
    assert "result.value by scenario and option set" in shown and "plain_0" in shown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--baseline", "good", "--wait", "--fail-if", "result.value < baseline * x"],
            "--fail-if: malformed condition",
        ),
        (
            ["--baseline", "good", "--wait", "--fail-if", "reslt.value > baseline"],
            "unknown metric 'reslt.value'",
        ),
        (["--option-sets", '{"a": 1}'], "JSON object of objects"),
    ],
)
def test_malformed_batch_values_are_usage_errors(
    daemon: Daemon, app_id: str, args: list[str], message: str
) -> None:
    start = f"experiment batch start -a {app_id} -b never -s two --instance-ids good"
    assert message in orch(daemon, start, args, code=2).stderr


def test_malformed_values_of_get_report_scenario_acceptance_exit_2(
    daemon: Daemon, app_id: str, tmp_path: Path
) -> None:
    bad_gate = ["--fail-if", "result.value < baseline * x"]
    get = f"experiment batch get -a {app_id} -b whichever --wait"
    assert "--fail-if: malformed" in orch(daemon, get, bad_gate, code=2).stderr
    report = f"experiment batch report -a {app_id} -b whichever --html {tmp_path / 'r.html'}"
    assert "--fail-if: malformed" in orch(daemon, report, bad_gate, code=2).stderr
    scenario = f"experiment scenario create -a {app_id} --scenario input-set=two"
    assert "instance=ID is required" in orch(daemon, scenario, code=2).stderr
    accept = (
        f"experiment acceptance create -a {app_id} -b {unique('acc')} -s two "
        "--baseline-instance-id good --candidate-instance-id worse"
    )
    avg = orch(daemon, accept, ["--metric", "result.value avg le 1%"], code=2)
    assert "statistic must be one of" in avg.stderr
    shape = orch(daemon, accept, ["--metric", "result.value mean about 1"], code=2)
    assert "expected FIELD STATISTIC OP" in shape.stderr


def test_counts_and_articles_read_right(daemon: Daemon, app_id: str, one_input: Any) -> None:
    assert "created input set one with 1 input\n" in one_input.stderr
    test_id = unique("acc")
    accept = orch(
        daemon,
        f"experiment acceptance create -a {app_id} -b {test_id} -s one",
        "--baseline-instance-id good --candidate-instance-id worse",
        ["--metric", "result.value mean le 1%"],
    )
    assert f"acceptance test {test_id} created (1 metric);" in accept.stderr
    refused = orch(daemon, f"experiment scenario get -a {app_id} -b {test_id}", code=1)
    assert f"{test_id} is an acceptance experiment, not a scenario test" in refused.stderr
    exp_id = unique("single")
    single = orch(
        daemon, f"experiment batch start -a {app_id} -b {exp_id} -s one --instance-ids good"
    )
    assert f"experiment {exp_id} started: 1 run;" in single.stderr


def test_csv_carries_the_baseline_comparison_as_columns(daemon: Daemon, app_id: str) -> None:
    exp_id = unique("csv")
    started = orch(
        daemon,
        f"experiment batch start -a {app_id} -b {exp_id} -s two --instance-ids good,worse",
        "--baseline good --objective max --wait --csv",
    )
    table = list(csv.DictReader(io.StringIO(started.stdout)))
    assert list(table[0])[-9:] == COMPARISON_COLUMNS  # after the daemon's columns
    value = {(r["target"], r["metric"]): r for r in table}
    worse = value[("worse", "result.value")]
    assert (worse["baseline"], worse["pairs"], worse["wins"], worse["losses"]) == (
        "good",
        "2",
        "0",
        "2",
    )
    assert float(worse["mean_change"]) < 0 and worse["verdict"]
    assert value[("worse", "run.duration")]["pairs"] == "2"  # timing: change, no wins
    assert all(r["baseline"] == "" for r in table if r["target"] == "good")
    got = orch(daemon, f"experiment batch get -a {app_id} -b {exp_id} --csv").stdout
    assert got == started.stdout  # one CSV, whichever command prints it
