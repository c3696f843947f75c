"""``orch experiment switchback ...``: a candidate instance takes turns with the baseline.

While a test runs, every run made on its baseline instance (``orch app run``, ``/runs``)
is served by the instance the plan gives the current time unit; the plan is drawn at
the start, half the units to each instance in a random order (its seed is shown).
The daemon routes and keeps the plan; this module only sends requests and renders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from orchestrator.cli import switchback_view as view
from orchestrator.cli.context import AppOption, HomeOption, JsonOption, an_id, client
from orchestrator.cli.flags import a_time, require_label_change
from orchestrator.cli.input_set import DescriptionOption, NameOption
from orchestrator.cli.output import command_line, emit, errors_to_exit, fail, print_json, say

app = typer.Typer(
    help="Switchback tests: runs on a baseline instance alternate with a candidate by time unit.",
    no_args_is_help=True,
)

Intent = Literal["complete", "cancel"]
TestIdOption = typer.Option(..., "--switchback-test-id", callback=an_id, help="Switchback test ID.")


@app.command("create")
def create(
    app_id: str = AppOption,
    baseline: str = typer.Option(
        ..., "--baseline-instance-id", callback=an_id, help="The instance whose runs are switched."
    ),
    candidate: str = typer.Option(
        ...,
        "--candidate-instance-id",
        callback=an_id,
        help="The instance that serves the candidate's units.",
    ),
    unit_minutes: float = typer.Option(
        ..., "--unit-duration-minutes", min=1, max=10080, help="Length of a unit (minutes)."
    ),
    units: int = typer.Option(..., "--units", min=1, max=1000, help="How many units."),
    test_id: str | None = typer.Option(
        None,
        "--switchback-test-id",
        callback=an_id,
        help="Switchback test ID (default: generated).",
    ),
    name: str | None = typer.Option(None, "--name", "-n", help="Name (default: the ID)."),
    description: str = typer.Option("", "--description", "-d", help="Description."),
    start: str | None = typer.Option(
        None,
        "--start",
        callback=a_time,
        help="Start by itself at this time (ISO 8601; no offset: UTC; default: on `start`).",
    ),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a switchback test as a draft; prints its ID (SB=$(orch ... create ...) works)."""
    plan: dict[str, object] = {"unit_duration_minutes": unit_minutes, "units": units}
    if start is not None:
        plan["start"] = start
    body = {
        "id": test_id,
        "name": name,
        "description": description,
        "comparison": {"baseline_instance_id": baseline, "candidate_instance_id": candidate},
        "generate_random_plan": plan,
    }
    with errors_to_exit(), client(home) as api:
        test = api.switchback.create(app_id, {k: v for k, v in body.items() if v is not None})
    start_it = command_line(
        "experiment switchback start",
        ("-a", app_id),
        ("--switchback-test-id", test["id"]),
        home=home,
    )
    when = f"starts at {start}" if start else f"start it with: {start_it}"
    say(f"switchback test {test['id']} created as a draft; {when}")
    emit(test, as_json, lambda t: typer.echo(t["id"]))


@app.command("list")
def list_tests(
    app_id: str = AppOption, home: Path | None = HomeOption, as_json: bool = JsonOption
) -> None:
    """List the app's switchback tests, newest first."""
    with errors_to_exit(), client(home) as api:
        data = api.switchback.list(app_id)
    emit(data, as_json, view.tests)


@app.command("get")
def get(
    app_id: str = AppOption,
    test_id: str = TestIdOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Show a switchback test: its plan unit by unit, the runs it routed, each arm's results."""
    with errors_to_exit(), client(home) as api:
        test = api.switchback.get(app_id, test_id)
        runs = api.switchback.runs(app_id, test_id)["runs"]
        arms = api.switchback.summary(app_id, test_id)["arms"]
    if as_json:
        print_json({**test, "runs": runs, "arms": arms})
        return
    view.test(test, runs, arms)


@app.command("start")
def start(
    app_id: str = AppOption,
    test_id: str = TestIdOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Draw the plan and start switching runs on the baseline now."""
    with errors_to_exit(), client(home) as api:
        test = api.switchback.start(app_id, test_id)
    plan = test["plan"]
    say(
        f"switchback test {test_id} started: {plan['number_of_units']} units of"
        f" {plan['unit_duration_minutes']:g} min (seed {plan.get('seed')})"
    )
    emit(test, as_json, view.plan)


@app.command("stop")
def stop(
    app_id: str = AppOption,
    test_id: str = TestIdOption,
    intent: Intent = typer.Option(
        "complete", "--intent", help="complete (it ends completed) or cancel (canceled)."
    ),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Stop switching: runs on the baseline run there again; the test's runs go on."""
    with errors_to_exit(), client(home) as api:
        test = api.switchback.stop(app_id, test_id, intent)
    if as_json:
        print_json(test)
    say(f"switchback test {test_id} {test['status']}")


@app.command("update")
def update(
    app_id: str = AppOption,
    test_id: str = TestIdOption,
    name: str | None = NameOption,
    description: str | None = DescriptionOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Rename a switchback test or change its description."""
    require_label_change(name, description)
    with errors_to_exit(), client(home) as api:
        test = api.switchback.update(app_id, test_id, name, description)
    if as_json:
        print_json(test)
    say(f"updated switchback test {test_id}")


@app.command("delete")
def delete(
    app_id: str = AppOption,
    test_id: str = TestIdOption,
    confirm: bool = typer.Option(False, "--confirm", help="Yes, delete it and its runs."),
    home: Path | None = HomeOption,
) -> None:
    """Delete a switchback test with the runs it routed (needs --confirm)."""
    if not confirm:
        fail(f"deleting switchback test {test_id} also deletes its runs; add --confirm")
    with errors_to_exit(), client(home) as api:
        api.switchback.delete(app_id, test_id)
    say(f"deleted switchback test {test_id}")
