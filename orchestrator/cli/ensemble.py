"""``orch ensemble create|list|get|update|delete|result``: ensemble definitions, and what an
ensemble run chose.

A definition names run groups (an instance, options, repetitions) and the rules that
pick the winning child; ``orch app run -a APP -e DEFINITION`` runs it. Named as in the
nextmv CLI (``nextmv cloud ensemble ...``, ``--ensemble-definition-id``/``-e``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from orchestrator.cli import ensemble_view as view
from orchestrator.cli.context import AppOption, HomeOption, JsonOption, an_id, client
from orchestrator.cli.ensemble_spec import GroupFlags, RuleFlags, definition_body, objective_option
from orchestrator.cli.flags import name_value_pairs, require_label_change
from orchestrator.cli.output import command_line, emit, errors_to_exit, fail, say
from orchestrator.client import ClientError, OrchClient
from orchestrator.client.types import EnsembleDefinition, EnsembleResult

app = typer.Typer(
    help="Ensembles: run several instances on one input and keep the best run.",
    no_args_is_help=True,
)

ToleranceType = Literal["absolute", "relative"]
DefinitionIdOption = typer.Option(
    ..., "--ensemble-definition-id", "-e", callback=an_id, help="Ensemble definition ID."
)


def _split(values: list[str] | None) -> list[str]:
    """``["a,b", "c"]`` → ``["a", "b", "c"]``: a flag takes a comma list, or repeats."""
    return [part.strip() for v in values or [] for part in v.split(",") if part.strip()]


def _show(data: EnsembleDefinition, as_json: bool) -> None:
    emit(data, as_json, view.show_definition)


@app.command("create")
def create(
    app_id: str = AppOption,
    definition_id: str | None = typer.Option(
        None,
        "--ensemble-definition-id",
        "-e",
        callback=an_id,
        help="ID of the new definition (default: made up).",
    ),
    name: str | None = typer.Option(None, "--name", "-n", help="Name (default: the ID)."),
    description: str | None = typer.Option(None, "--description", "-d", help="Description."),
    file: Path | None = typer.Option(
        None,
        "--file",
        exists=True,
        dir_okay=False,
        help="A definition as JSON (what get --json prints); the flags add to it.",
    ),
    instance_ids: list[str] | None = typer.Option(
        None,
        "--instance-ids",
        callback=an_id,
        help="One run group per instance, named after it (comma list).",
    ),
    repetitions: int | None = typer.Option(
        None, "--repetitions", min=1, max=100, help="Child runs per --instance-ids group."
    ),
    options: list[str] | None = typer.Option(
        None,
        "--options",
        "--option",
        "-o",
        metavar="NAME=VALUE",
        callback=name_value_pairs,
        help="An option for the runs of the --instance-ids groups (repeatable).",
    ),
    run_groups: list[str] | None = typer.Option(
        None,
        "--run-groups",
        metavar="JSON",
        help='Run groups as JSON: {"id", "instance_id", "options", "repetitions"} or an '
        "array of them (repeatable).",
    ),
    statistics_path: str | None = typer.Option(
        None, "--statistics-path", help="Where a rule reads its number (e.g. $.result.value)."
    ),
    objective: str | None = objective_option(long=True, help="Which number wins."),
    tolerance: float = typer.Option(
        0.0, "--tolerance", min=0, help="Children this close to the best tie (next rule decides)."
    ),
    tolerance_type: ToleranceType = typer.Option(
        "absolute", "--tolerance-type", help="absolute: a difference; relative: a fraction."
    ),
    rules: list[str] | None = typer.Option(
        None,
        "--rules",
        metavar="JSON",
        help='Rules as JSON: {"id", "statistics_path", "objective", "tolerance": {"value", '
        '"type"}, "index"} or an array of them (repeatable).',
    ),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Create an ensemble definition: run groups (instances) and the rules that pick a winner.

    E.g. orch ensemble create -a APP -e best --instance-ids fast,thorough
    --statistics-path '$.result.value' --objective maximize
    """
    body = definition_body(
        file,
        run_groups,
        rules,
        GroupFlags(_split(instance_ids), repetitions, options),
        RuleFlags(statistics_path, objective, tolerance, tolerance_type),
    )
    given = {"id": definition_id, "name": name, "description": description}
    body |= {k: v for k, v in given.items() if v is not None}
    with errors_to_exit(), client(home) as api:
        data = api.ensembles.create(app_id, body)
    _show(data, as_json)


@app.command("list")
def list_definitions(
    app_id: str = AppOption, home: Path | None = HomeOption, as_json: bool = JsonOption
) -> None:
    """List the app's ensemble definitions."""
    with errors_to_exit(), client(home) as api:
        data = api.ensembles.list(app_id)
    emit(data, as_json, view.show_definitions)


@app.command("get")
def get(
    app_id: str = AppOption,
    definition_id: str = DefinitionIdOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Show an ensemble definition: its run groups and its rules."""
    with errors_to_exit(), client(home) as api:
        data = api.ensembles.get(app_id, definition_id)
    _show(data, as_json)


@app.command("update")
def update(
    app_id: str = AppOption,
    definition_id: str = DefinitionIdOption,
    name: str | None = typer.Option(None, "--name", "-n", help="New name."),
    description: str | None = typer.Option(None, "--description", "-d", help="New description."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Rename or re-describe an ensemble definition (its groups and rules never change)."""
    require_label_change(name, description)
    with errors_to_exit(), client(home) as api:
        data = api.ensembles.update(app_id, definition_id, name, description)
    _show(data, as_json)


@app.command("delete")
def delete(
    app_id: str = AppOption,
    definition_id: str = DefinitionIdOption,
    confirm: bool = typer.Option(False, "--confirm", help="Yes, delete it."),
    home: Path | None = HomeOption,
) -> None:
    """Delete an ensemble definition (needs --confirm); runs made from it keep their copy."""
    if not confirm:
        fail(f"add --confirm to delete ensemble definition {definition_id}")
    with errors_to_exit(), client(home) as api:
        api.ensembles.delete(app_id, definition_id)
    say(f"deleted ensemble definition {definition_id}")


@app.command("result")
def result(
    app_id: str = AppOption,
    run_id: str = typer.Option(
        ..., "--run-id", "-r", callback=an_id, help="ID of an ensemble run."
    ),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Show what an ensemble run chose: every child run, the values its rules read, the winner."""
    with errors_to_exit(), client(home) as api:
        try:
            data = api.ensembles.result(app_id, run_id)
        except ClientError as exc:
            if exc.status == 404:
                _refuse_a_child(api, app_id, run_id, home)
            raise

    def human(d: EnsembleResult) -> None:
        view.show_children(d)
        view.say_winner(d)

    emit(data, as_json, human)


def _refuse_a_child(api: OrchClient, app_id: str, run_id: str, home: Path | None) -> None:
    """A child run (the daemon's 404: not an ensemble run) is refused naming its ensemble
    run, which the child's metadata holds (``parent_run_id``), with the command that
    shows that run's result. Returns for any other run: the daemon's 404 then stands."""
    try:
        parent = api.runs.metadata(app_id, run_id)["metadata"].get("parent_run_id")
    except ClientError:  # no such run either: the first answer says so
        return
    if parent:
        hint = command_line("ensemble result", ("-a", app_id), ("-r", parent), home=home)
        fail(f"run {run_id} is a child run of ensemble run {parent}; its result: {hint}")
