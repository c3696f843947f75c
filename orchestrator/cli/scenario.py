"""``orch experiment scenario ...``: scenario tests, one instance and input set (or listed
inputs) per scenario, with option variations and repetitions.

``--scenario`` describes one scenario as comma-separated KEY=VALUE pairs:

    instance=ID (required), input-set=ID or inputs=ID|ID, id=NAME (default scenario-N);
    any other KEY is an option of the model, its values separated by |

e.g. ``--scenario "id=fast,instance=prod,input-set=cases,scale=1|4"``: each value of each
option is a variation (the cross product), and every input runs once per variation and
repetition. The daemon expands the scenarios the way the SDK's ``new_scenario_test`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from orchestrator.cli import experiment_view as view
from orchestrator.cli.context import AppOption, HomeOption, JsonOption, an_id, client
from orchestrator.cli.experiment_wait import keeps_running, until_ended
from orchestrator.cli.flags import WaitOption
from orchestrator.cli.output import (
    command_line,
    emit,
    errors_to_exit,
    fail,
    note_undeclared,
    print_json,
    say,
    table,
)
from orchestrator.client import OrchClient
from orchestrator.client.types import Experiment

app = typer.Typer(
    help="Scenario tests: scenarios x inputs x option variations x repetitions.",
    no_args_is_help=True,
)

EXIT_CODES = {"completed": 0, "failed": 1, "canceled": 2}
RESERVED = {"id", "instance", "input-set", "inputs"}
BY_OPTION_SET = ["scenarioID", "optionSetID"]
GROUP_COLUMNS = [
    ("scenario", "scenario"),
    ("option set", "option_set"),
    ("options", "options"),
    ("n", "n"),
    ("result.value mean", "mean"),
    ("min", "min"),
    ("max", "max"),
]
TestIdOption = typer.Option(
    ...,
    "--batch-experiment-id",
    "--scenario-test-id",
    "-b",
    callback=an_id,
    help="Scenario test ID (= its batch experiment's).",
)
NewTestIdOption = typer.Option(
    None,
    "--batch-experiment-id",
    "--scenario-test-id",
    "-b",
    callback=an_id,
    help="Scenario test ID (= its batch experiment's; default: generated).",
)
ScenarioOption = typer.Option(
    ...,
    "--scenario",
    metavar="SPEC",
    help="instance=ID,input-set=ID|inputs=ID|ID[,id=NAME][,OPTION=V1|V2...] (repeatable).",
)
RepetitionsOption = typer.Option(1, "--repetitions", min=1, help="Runs per combination.")
NameOption = typer.Option(None, "--name", "-n", help="Name (default: the ID).")
DescriptionOption = typer.Option("", "--description", "-d", help="Description.")


def parse_scenario(text: str) -> dict[str, Any]:
    """One ``--scenario`` SPEC as the SDK's ``Scenario`` JSON (the body the daemon expands);
    a malformed SPEC is a command-line mistake (exit 2)."""
    pairs: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            fail(f"--scenario {text!r}: {part!r} is not KEY=VALUE", code=2)
        if key.strip() in pairs:
            fail(f"--scenario {text!r}: {key.strip()!r} is given twice", code=2)
        pairs[key.strip()] = value.strip()
    if "instance" not in pairs:
        fail(f"--scenario {text!r}: instance=ID is required", code=2)
    if ("input-set" in pairs) == ("inputs" in pairs):
        fail(f"--scenario {text!r}: give input-set=ID or inputs=ID|ID", code=2)
    scenario_input = (
        {"scenario_input_type": "input_set", "scenario_input_data": pairs["input-set"]}
        if "input-set" in pairs
        else {"scenario_input_type": "input", "scenario_input_data": pairs["inputs"].split("|")}
    )
    options = [{"name": k, "values": v.split("|")} for k, v in pairs.items() if k not in RESERVED]
    return {
        "scenario_id": pairs.get("id"),
        "instance_id": pairs["instance"],
        "scenario_input": scenario_input,
        "configuration": options or None,
    }


@app.command("create")
def create(
    app_id: str = AppOption,
    test_id: str | None = NewTestIdOption,
    scenarios: list[str] = ScenarioOption,
    repetitions: int = RepetitionsOption,
    name: str | None = NameOption,
    description: str = DescriptionOption,
    wait: bool = WaitOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Start a scenario test. Without --wait: prints its ID.

    SPEC: instance=ID,input-set=ID (or inputs=ID|ID)[,id=NAME][,OPTION=V1|V2...]

    Each value of each OPTION is a variation (the cross product); default id: scenario-N.

    e.g. --scenario "id=fast,instance=prod,input-set=cases,scale=1|4" --repetitions 2

    With --wait: a progress bar, then result.value by scenario and option set.

    Exit code with --wait: 0 completed, 1 no run succeeded, 2 canceled.
    """
    body = {
        "id": test_id,
        "name": name,
        "description": description,
        "type": "scenario",
        "scenarios": [parse_scenario(s) for s in scenarios],
        "repetitions": repetitions,
    }
    with errors_to_exit(), client(home) as api:
        created = api.batches.start(app_id, {k: v for k, v in body.items() if v is not None})
        note_undeclared(created)
        test_id = created["id"]
        follow = "" if wait else f"; follow it with: {_follow(app_id, test_id, home)}"
        with keeps_running(f"scenario test {test_id}", _follow(app_id, test_id, home)):
            say(
                f"scenario test {test_id} started: "
                f"{view.count_of(created['number_of_requested_runs'], 'run')}{follow}"
            )
            if not wait:
                emit(created, as_json, lambda d: typer.echo(d["id"]))
                return
            data = _wait(api, app_id, test_id, home)
    emit(data, as_json, show)
    raise typer.Exit(EXIT_CODES.get(data["status"], 1))


def _follow(app_id: str, test_id: str, home: Path | None) -> str:
    """The command that waits for the test and shows its results, to paste."""
    return (
        command_line("experiment scenario get", ("-a", app_id), ("-b", test_id), home=home)
        + " --wait"
    )


def _wait(api: OrchClient, app_id: str, test_id: str, home: Path | None) -> Experiment:
    """Poll until the test ends (Ctrl-C stops waiting, not the runs)."""
    with keeps_running(f"scenario test {test_id}", _follow(app_id, test_id, home)):
        until_ended(api, app_id, test_id)
        return api.batches.get(app_id, test_id)


def show(data: Experiment) -> None:
    """The test, then result.value by scenario and option set (once it has ended)."""
    view.experiment(data)
    options = data.get("option_sets") or {}
    rows = []
    for group in data.get("grouped_distributional_summaries") or []:
        if group["group_keys"] != BY_OPTION_SET:
            continue
        scenario, option_set = group["group_values"]
        value = group["indicator_distributions"].get("result.value") or {}
        rows.append(
            {
                "scenario": scenario,
                "option_set": option_set,
                "options": view.pairs(options.get(option_set)) or "-",
                "n": value.get("count", 0),
                **{k: view.number(value[k]) if value else None for k in ("mean", "min", "max")},
            }
        )
    if rows:
        table(rows, GROUP_COLUMNS, title="result.value by scenario and option set")


@app.command("list")
def list_tests(
    app_id: str = AppOption, home: Path | None = HomeOption, as_json: bool = JsonOption
) -> None:
    """List the app's scenario tests."""
    with errors_to_exit(), client(home) as api:
        data = api.batches.list(app_id, "scenario")
    emit(data, as_json, view.experiments)


@app.command("get")
def get(
    app_id: str = AppOption,
    test_id: str = TestIdOption,
    wait: bool = typer.Option(
        False,
        "--wait",
        "-w",
        help="Wait for the end (progress on stderr); exit code as create --wait's.",
    ),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Show a scenario test; once ended, with result.value by scenario and option set.

    Exit code with --wait: 0 completed, 1 no run succeeded, 2 canceled.
    """
    with errors_to_exit(), client(home) as api:
        data = api.batches.get(app_id, test_id)
        _require_scenario(data, test_id)
        if wait:
            data = _wait(api, app_id, test_id, home)
    emit(data, as_json, show)
    if wait:
        raise typer.Exit(EXIT_CODES.get(data["status"], 1))


def _require_scenario(data: Experiment, test_id: str) -> None:
    """A batch or acceptance experiment has no scenarios: refused, naming what it is."""
    if data.get("type") != "scenario":
        fail(f"{test_id} is {view.a_kind(data.get('type'))} experiment, not a scenario test")


@app.command("runs")
def runs(
    app_id: str = AppOption,
    test_id: str = TestIdOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """List a scenario test's runs with their scenario, option set and repetition."""
    with errors_to_exit(), client(home) as api:
        data = api.batches.runs(app_id, test_id)
    if as_json:
        print_json(data)
        return
    view.runs(data["runs"], with_scenario=True)


@app.command("delete")
def delete(
    app_id: str = AppOption,
    test_id: str = TestIdOption,
    confirm: bool = typer.Option(False, "--confirm", help="Yes, delete it and its runs."),
    home: Path | None = HomeOption,
) -> None:
    """Delete a scenario test with its runs (needs --confirm); its inputs stay."""
    if not confirm:
        fail(f"deleting scenario test {test_id} also deletes its runs; add --confirm to go ahead")
    with errors_to_exit(), client(home) as api:
        _require_scenario(api.batches.get(app_id, test_id), test_id)
        api.batches.delete(app_id, test_id)
    say(f"deleted scenario test {test_id}")
