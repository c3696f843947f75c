"""``orch experiment shadow ...``: shadow a baseline instance's runs on candidate instances.

A started shadow test makes, for each run on its baseline instance (``orch app run``,
``/runs``, the SDK), one run per candidate instance with the same input and options;
they are ordinary runs marked with the test's ID. A test is made a draft and starts
with ``start`` (or ``create --start``, or at ``--start-time``); it ends after
``--maximum-runs`` baseline runs, at ``--end-time``, or with ``stop``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import typer

from orchestrator.cli import shadow_view as view
from orchestrator.cli.context import AppOption, HomeOption, JsonOption, an_id, client
from orchestrator.cli.flags import a_time, require_label_change
from orchestrator.cli.input_set import DescriptionOption, NameOption, split_ids
from orchestrator.cli.output import command_line, emit, errors_to_exit, fail, print_json, say
from orchestrator.client.types import ShadowTest

app = typer.Typer(
    help="Shadow tests: each run on a baseline instance also runs on candidate instances.",
    no_args_is_help=True,
)

Intent = Literal["complete", "cancel"]
TestIdOption = typer.Option(..., "--shadow-test-id", callback=an_id, help="Shadow test ID.")
NewTestIdOption = typer.Option(
    None, "--shadow-test-id", callback=an_id, help="Shadow test ID (default: made)."
)
BaselineOption = typer.Option(
    None, "--baseline-instance-id", callback=an_id, help="The instance whose runs are shadowed."
)
CandidatesOption = typer.Option(
    None,
    "--candidate-instance-ids",
    callback=an_id,
    help="Instances each baseline run also runs on (a,b or repeated).",
)
ComparisonsOption = typer.Option(
    None,
    "--comparisons",
    metavar="JSON",
    help='Several baselines at once, as nextmv takes them: {"base": ["cand1", "cand2"], ...}.',
)
MaxRunsOption = typer.Option(
    ...,
    "--maximum-runs",
    "--termination-maximum-runs",
    min=1,
    max=300,
    help="Baseline runs to shadow, then it completes.",
)
StartTimeOption = typer.Option(
    None,
    "--start-time",
    callback=a_time,
    help="Start by itself then (ISO 8601; no offset: local time).",
)
EndTimeOption = typer.Option(
    None,
    "--end-time",
    "--termination-time",
    callback=a_time,
    help="Complete then at the latest (ISO 8601; no offset: local time).",
)


@app.command("create")
def create(
    app_id: str = AppOption,
    baseline: str | None = BaselineOption,
    candidates: list[str] | None = CandidatesOption,
    comparisons: str | None = ComparisonsOption,
    maximum_runs: int = MaxRunsOption,
    test_id: str | None = NewTestIdOption,
    name: str | None = typer.Option(None, "--name", "-n", help="Name (default: the ID)."),
    description: str | None = typer.Option(None, "--description", "-d", help="Description."),
    start_time: str | None = StartTimeOption,
    end_time: str | None = EndTimeOption,
    start: bool = typer.Option(False, "--start", help="Start it now (else it is a draft)."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a shadow test (a draft unless --start or a --start-time that has passed).

    Name the baseline and its candidates, or give several baselines with --comparisons."""
    if start and start_time:
        fail("give --start or --start-time, not both", code=2)
    body: dict[str, Any] = {
        "id": test_id,
        "name": name,
        "description": description,
        "comparisons": _comparisons(baseline, candidates, comparisons),
        "termination_events": {"maximum_runs": maximum_runs, "time": end_time},
        "start_events": {"time": start_time} if start_time else None,
    }
    with errors_to_exit(), client(home) as api:
        test = api.shadow.create(app_id, {k: v for k, v in body.items() if v is not None})
        if start:
            test = api.shadow.start(app_id, test["id"])
    say(f"shadow test {test['id']} {test['status']}{_next_step(app_id, test, start_time, home)}")
    emit(test, as_json, lambda t: typer.echo(t["id"]))


def _next_step(app_id: str, test: ShadowTest, start_time: str | None, home: Path | None) -> str:
    """What to type next, complete enough to paste: a draft waits for ``start`` (unless it
    starts by itself at ``--start-time``), a started test is followed with ``get``."""
    status = test["status"]
    if status == "draft" and start_time:
        return f"; starts at {start_time}"
    if status not in ("draft", "started"):
        return ""
    action, verb = ("start", "start") if status == "draft" else ("get", "follow")
    line = command_line(
        f"experiment shadow {action}", ("-a", app_id), ("--shadow-test-id", test["id"]), home=home
    )
    return f"; {verb} it with: {line}"


def _comparisons(
    baseline: str | None, candidates: list[str] | None, given: str | None
) -> dict[str, Any]:
    if given is not None:
        if baseline or candidates:
            fail(
                "give --comparisons, or --baseline-instance-id and --candidate-instance-ids",
                code=2,
            )
        try:
            found = json.loads(given)
        except ValueError as exc:
            fail(f"--comparisons is not JSON: {exc}")
        if not isinstance(found, dict):
            fail('--comparisons takes an object: {"baseline": ["candidate", ...]}')
        return found
    if not baseline or not candidates:
        fail("give --baseline-instance-id and --candidate-instance-ids (or --comparisons)", code=2)
    return {baseline: split_ids(candidates)}


@app.command("list")
def list_tests(
    app_id: str = AppOption, home: Path | None = HomeOption, as_json: bool = JsonOption
) -> None:
    """List the app's shadow tests."""
    with errors_to_exit(), client(home) as api:
        tests = api.shadow.list(app_id)
    emit(tests, as_json, view.shadow_tests)


@app.command("get")
def get(
    app_id: str = AppOption,
    test_id: str = TestIdOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Show a shadow test and its runs: each baseline run, then its candidate runs."""
    with errors_to_exit(), client(home) as api:
        test = api.shadow.get(app_id, test_id)
        runs = api.shadow.runs(app_id, test_id)
    if as_json:
        print_json({**test, "runs": runs})
        return
    view.shadow_test(test)
    view.shadow_runs(runs)


@app.command("start")
def start(
    app_id: str = AppOption,
    test_id: str = TestIdOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Start a draft: from now on, runs on its baseline instance are shadowed."""
    with errors_to_exit(), client(home) as api:
        test = api.shadow.start(app_id, test_id)
    say(f"shadow test {test_id} started")
    if as_json:
        print_json(test)


@app.command("stop")
def stop(
    app_id: str = AppOption,
    test_id: str = TestIdOption,
    intent: Intent = typer.Option(
        "complete", "--intent", help="complete, or cancel (which cancels its unfinished runs)."
    ),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Stop a started test: nothing more is shadowed."""
    with errors_to_exit(), client(home) as api:
        test = api.shadow.stop(app_id, test_id, intent)
    say(f"shadow test {test_id} {test['status']}")
    if as_json:
        print_json(test)


@app.command("update")
def update(
    app_id: str = AppOption,
    test_id: str = TestIdOption,
    name: str | None = NameOption,
    description: str | None = DescriptionOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Rename a shadow test or change its description."""
    require_label_change(name, description)
    with errors_to_exit(), client(home) as api:
        test = api.shadow.update(app_id, test_id, name, description)
    say(f"updated shadow test {test_id}")
    if as_json:
        print_json(test)


@app.command("delete")
def delete(
    app_id: str = AppOption,
    test_id: str = TestIdOption,
    confirm: bool = typer.Option(False, "--confirm", help="Yes, delete it and its runs."),
    home: Path | None = HomeOption,
) -> None:
    """Delete a stopped shadow test and the candidate runs it made (needs --confirm).

    The baseline runs are the user's: they stay."""
    if not confirm:
        fail(
            f"deleting shadow test {test_id} also deletes the candidate runs it made;"
            " add --confirm to go ahead"
        )
    with errors_to_exit(), client(home) as api:
        api.shadow.delete(app_id, test_id)
    say(f"deleted shadow test {test_id}")
