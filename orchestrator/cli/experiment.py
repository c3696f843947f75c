"""``orch experiment input-set|batch ...``: run instances and versions on fixed inputs,
compare them against a baseline, and gate CI on regressions.

The daemon computes the summary and the gate's verdict; this module only sends requests
and hands the JSON to ``experiment_view``. The one local check is the ``--fail-if``
syntax (a pure parser), so a typo fails at once rather than after a long experiment.
"""

from __future__ import annotations

import json
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Literal

import typer

from orchestrator.cli import acceptance, input_set, scenario, shadow, switchback
from orchestrator.cli import experiment_view as view
from orchestrator.cli.context import AppOption, HomeOption, JsonOption, an_id, client
from orchestrator.cli.ensemble_spec import objective_option
from orchestrator.cli.experiment_wait import keeps_running, until_ended
from orchestrator.cli.flags import WaitOption, renamed
from orchestrator.cli.input_set import InputSetIdOption, split_ids
from orchestrator.cli.output import (
    command_line,
    emit,
    errors_to_exit,
    fail,
    note_undeclared,
    open_output,
    print_json,
    say,
    writable_file,
)
from orchestrator.client import OrchClient
from orchestrator.client.types import ExperimentMetadata
from orchestrator.errors import OrchError
from orchestrator.experiments.gate import parse as parse_gate

app = typer.Typer(
    help="Experiments: input sets, batch experiments that compare instances and versions,"
    " acceptance, scenario, switchback and shadow tests.",
    no_args_is_help=True,
)
batch_app = typer.Typer(
    help="Batch experiments: inputs x targets x option sets x repetitions, then a summary.",
    no_args_is_help=True,
)
app.add_typer(input_set.app, name="input-set")
app.add_typer(batch_app, name="batch")
app.add_typer(acceptance.app, name="acceptance")
app.add_typer(scenario.app, name="scenario")
app.add_typer(switchback.app, name="switchback")
app.add_typer(shadow.app, name="shadow")

EXIT_CODES = {"completed": 0, "failed": 1, "canceled": 2}
"""Exit code of ``batch start --wait`` by final status, as ``orch app run --wait`` does."""
InputFormat = Literal["json", "text"]

BatchIdOption = typer.Option(
    ..., "--batch-experiment-id", "-b", callback=an_id, help="Batch experiment ID."
)


# --- batch experiments -----------------------------------------------------------------


NewBatchIdOption = typer.Option(
    None, "--batch-experiment-id", "-b", callback=an_id, help="Experiment ID (default: generated)."
)
InstanceIdsOption = typer.Option(
    None, "--instance-ids", callback=an_id, help="Instances to run (comma-separated or repeated)."
)
OldInstanceIdsOption = typer.Option(
    None, "-i", hidden=True, callback=an_id, help="Old spelling of --instance-ids."
)
VersionIdsOption = typer.Option(
    None,
    "--version-ids",
    callback=an_id,
    help="Versions to run bare, without an instance (comma-separated).",
)
OptionSetsOption = typer.Option(
    None,
    "--option-sets",
    metavar="JSON|@FILE",
    help='Named option sets, e.g. \'{"fast": {"duration": "1"}}\'; each target runs each.',
)
RepetitionsOption = typer.Option(1, "--repetitions", min=1, help="Runs per combination.")
BaselineOption = typer.Option(
    None,
    "--baseline",
    help="Target the others are compared to (instance or version:ID); with --option-sets,"
    " TARGET:OPTION_SET (e.g. prod:fast): each (target, option set) is compared to it.",
)
ObjectiveOption = objective_option(long=False, help="Better result.value: min (default) or max.")
PriorityOption = typer.Option(
    None, "--priority", min=1, max=9, help="Queue priority (default 8: after manual runs)."
)
FailIfOption = typer.Option(
    None,
    "--fail-if",
    metavar="EXPR",
    help="With --wait and --baseline: exit 1 on a regression, "
    "e.g. 'result.value > baseline * 1.01' (syntax below).",
)
SeedOption = typer.Option(
    None,
    "--seed",
    min=0,
    max=2**32 - 1,
    help="Seed of the shuffled queue order (default: drawn; shown by get).",
)
StartJsonOption = typer.Option(
    False, "--json", help="Print the experiment (with --wait: the summary) as JSON."
)


@batch_app.command("start")
def start(
    app_id: str = AppOption,
    exp_id: str | None = NewBatchIdOption,
    set_id: str = InputSetIdOption,
    instance_ids: list[str] | None = InstanceIdsOption,
    old_instance_ids: list[str] | None = OldInstanceIdsOption,
    version_ids: list[str] | None = VersionIdsOption,
    option_sets: str | None = OptionSetsOption,
    repetitions: int = RepetitionsOption,
    baseline: str | None = BaselineOption,
    objective: str | None = ObjectiveOption,
    priority: int | None = PriorityOption,
    seed: int | None = SeedOption,
    name: str | None = typer.Option(None, "--name", "-n", help="Name (default: the ID)."),
    description: str = typer.Option("", "--description", "-d", help="Description."),
    wait: bool = WaitOption,
    fail_if: str | None = FailIfOption,
    home: Path | None = HomeOption,
    as_json: bool = StartJsonOption,
    as_csv: bool = typer.Option(False, "--csv", help="With --wait: print the summary as CSV."),
) -> None:
    """Run every input of a set on every target (x option sets x repetitions).

    Without --wait: prints the experiment ID, so EXP=$(orch experiment batch start ...) works.

    With --wait: a progress bar on stderr, then the summary on stdout (Ctrl-C stops waiting).

    Exit code with --wait: 0 completed, 1 no run succeeded or the gate failed, 2 canceled.

    --fail-if: METRIC OP baseline, optionally followed by * FACTOR, + DELTA or - DELTA.

    METRIC: result.value, run.duration, wall_time, cpu_time, peak_memory_mb or custom.NAME.

    OP: > >= < <= == != . Join conditions with ' or '; each is checked input by input.
    """
    instance_ids = renamed(instance_ids, old_instance_ids, "-i", "--instance-ids")
    _check_start_flags(wait, fail_if, baseline, as_json, as_csv)
    body = {
        "id": exp_id,
        "name": name,
        "description": description,
        "input_set_id": set_id,
        "instance_ids": split_ids(instance_ids),
        "version_ids": split_ids(version_ids),
        "option_sets": _option_sets(option_sets),
        "repetitions": repetitions,
        "baseline": baseline,
        "objective": objective,
        "priority": priority,
        "seed": seed,
    }
    with errors_to_exit(), client(home) as api:
        created = api.batches.start(app_id, {k: v for k, v in body.items() if v is not None})
        note_undeclared(created)
        exp_id = str(created["id"])
        with _keeps_running(app_id, exp_id, home):  # from the moment it exists
            say(
                f"experiment {exp_id} started: "
                + view.count_of(created["number_of_requested_runs"], "run")
                + ("" if wait else f"; follow it with: {_follow(app_id, exp_id, home)}")
            )
            if not wait:
                emit(created, as_json, lambda d: typer.echo(d["id"]))
                return
            meta = _wait(api, app_id, exp_id, home)
        _print_summary(api, app_id, exp_id, as_json, as_csv)
        code = _verdict(api, app_id, meta, fail_if, baseline)
    raise typer.Exit(code)


def _check_start_flags(
    wait: bool, fail_if: str | None, baseline: str | None, as_json: bool, as_csv: bool
) -> None:
    """Refuse flag combinations before anything is queued (a usage error, exit 2, as
    ``batch get --csv --json`` is), and a malformed gate expression before a long
    experiment runs only to fail on it."""
    if fail_if is not None:
        if not wait or not baseline:
            fail("--fail-if needs --wait and --baseline (it compares against the baseline)", code=2)
        _check_fail_if(fail_if)
    if as_csv and not wait:
        fail("--csv needs --wait (it prints the summary of the ended experiment)", code=2)
    _check_formats(as_json, as_csv)


def _check_fail_if(fail_if: str | None) -> None:
    """A malformed ``--fail-if`` is a usage error (exit 2), found without the daemon; only
    a ``custom.NAME`` no run reported is left for the daemon, which has the runs."""
    if fail_if is None:
        return
    try:
        parse_gate(fail_if)
    except OrchError as exc:
        fail(f"--fail-if: {exc.message}", code=2)


def _check_formats(as_json: bool, as_csv: bool) -> None:
    if as_csv and as_json:
        fail("give --json or --csv, not both", code=2)


def _option_sets(text: str | None) -> dict[str, dict[str, Any]] | None:
    """``--option-sets`` as JSON, inline or ``@file``: ``{"name": {"option": "value"}}``."""
    if text is None:
        return None
    try:
        raw = Path(text[1:]).expanduser().read_text() if text.startswith("@") else text
        sets = json.loads(raw)
    except (OSError, ValueError) as exc:
        fail(f"--option-sets: {exc}", code=2)
    if not isinstance(sets, dict) or not all(isinstance(v, dict) for v in sets.values()):
        fail(
            '--option-sets must be a JSON object of objects, e.g. {"fast": {"duration": "1"}}',
            code=2,
        )
    return sets


def _command(action: str, app_id: str, exp_id: str, home: Path | None) -> str:
    """A command line to paste, with --home when the user gave one."""
    return command_line(f"experiment batch {action}", ("-a", app_id), ("-b", exp_id), home=home)


def _follow(app_id: str, exp_id: str, home: Path | None) -> str:
    """The command that waits for the experiment and prints its summary, to paste."""
    return _command("get", app_id, exp_id, home) + " --wait"


def _wait(api: OrchClient, app_id: str, exp_id: str, home: Path | None) -> ExperimentMetadata:
    """Poll until the experiment ends. Ctrl-C stops waiting, not the runs: they belong to
    the daemon, and the user may want them after all."""
    with _keeps_running(app_id, exp_id, home):
        return until_ended(api, app_id, exp_id)


def _keeps_running(app_id: str, exp_id: str, home: Path | None) -> AbstractContextManager[None]:
    follow, cancel = _follow(app_id, exp_id, home), _command("cancel", app_id, exp_id, home)
    return keeps_running(f"experiment {exp_id}", follow, cancel)


def _print_summary(api: OrchClient, app_id: str, exp_id: str, as_json: bool, as_csv: bool) -> None:
    """The summary of an ended experiment: tables, ``--json`` or ``--csv`` (the daemon's,
    with the baseline comparison as columns). One function for ``start --wait`` and
    ``get``, so both print the same."""
    if as_csv:
        sys.stdout.write(api.batches.summary_csv(app_id, exp_id))
        return
    emit(api.batches.summary(app_id, exp_id), as_json, view.summary)


def _verdict(
    api: OrchClient,
    app_id: str,
    meta: ExperimentMetadata,
    fail_if: str | None,
    baseline: str | None,
) -> int:
    """The exit code: the final status first, then the gate (only on a completed experiment:
    a canceled or failed one proves nothing either way)."""
    status = meta["status"]
    code = EXIT_CODES.get(status, 1)
    say(f"experiment {meta['id']} {status}: {view.pairs(meta.get('run_counts'))}")
    if fail_if is None:
        return code
    if status != "completed":
        say(f"gate not checked: the experiment is {status}")
        return code
    gate = api.batches.gate(app_id, meta["id"], fail_if, baseline or "")
    say(gate["description"])
    return 1 if gate["failed"] else 0


@batch_app.command("get")
def get_batch(
    app_id: str = AppOption,
    exp_id: str = BatchIdOption,
    wait: bool = typer.Option(
        False,
        "--wait",
        "-w",
        help="Wait for the end (progress on stderr); exit code as batch start --wait's.",
    ),
    fail_if: str | None = typer.Option(
        None,
        "--fail-if",
        metavar="EXPR",
        help="With --wait: exit 1 on a regression against the experiment's baseline "
        "(syntax: batch start -h).",
    ),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
    as_csv: bool = typer.Option(
        False, "--csv", help="Print only the summary, as CSV (once the experiment has ended)."
    ),
) -> None:
    """Show an experiment: status, counts, targets, and the summary once it has ended.

    Exit code with --wait: 0 completed, 1 no run succeeded or the gate failed, 2 canceled.
    """
    if fail_if is not None and not wait:
        fail("--fail-if needs --wait (it checks the ended experiment)", code=2)
    _check_fail_if(fail_if)
    _check_formats(as_json, as_csv)
    with errors_to_exit(), client(home) as api:
        # checked before waiting: a long wait must not end in this refusal
        baseline = api.batches.get(app_id, exp_id)["baseline"] if fail_if else None
        if fail_if is not None and not baseline:
            fail(f"--fail-if compares against a baseline; experiment {exp_id} has none")
        meta = _wait(api, app_id, exp_id, home) if wait else None
        _show_batch(api, app_id, exp_id, home, as_json, as_csv)
        if meta is None:
            return
        code = _verdict(api, app_id, meta, fail_if, baseline)
    raise typer.Exit(code)


def _show_batch(
    api: OrchClient, app_id: str, exp_id: str, home: Path | None, as_json: bool, as_csv: bool
) -> None:
    """What ``get`` prints: the experiment and, once it has ended, its summary."""
    if as_csv:
        # the CSV is the summary alone, as ``start --wait --csv`` prints it: a running
        # experiment has none yet (its rows would change under a script reading them)
        meta = api.batches.metadata(app_id, exp_id)
        if meta["status"] == "started":
            fail(
                f"experiment {exp_id} is still running ({view.progress_text(meta)}): "
                "its summary comes when it ends; wait for it with: "
                + _follow(app_id, exp_id, home)
                + " --csv"
            )
        _print_summary(api, app_id, exp_id, as_json=False, as_csv=True)
        return
    data = api.batches.get(app_id, exp_id)
    summary = api.batches.summary(app_id, exp_id) if data["status"] != "started" else None
    if as_json:
        print_json({**data, "summary": summary})
        return
    view.experiment(data)
    if summary is not None:
        view.summary(summary)


@batch_app.command("list")
def list_batches(
    app_id: str = AppOption, home: Path | None = HomeOption, as_json: bool = JsonOption
) -> None:
    """List the app's batch experiments (scenario and acceptance tests have their own list)."""
    with errors_to_exit(), client(home) as api:
        data = api.batches.list(app_id, "batch")
    emit(data, as_json, view.experiments)


@batch_app.command("runs")
def batch_runs(
    app_id: str = AppOption,
    exp_id: str = BatchIdOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """List an experiment's runs with their target, input, option set and result.value."""
    with errors_to_exit(), client(home) as api:
        data = api.batches.runs(app_id, exp_id)
    emit(data, as_json, lambda d: view.runs(d["runs"]))


@batch_app.command("cancel")
def cancel_batch(
    app_id: str = AppOption,
    exp_id: str = BatchIdOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Cancel an experiment: its queued runs never start, its running ones are stopped (again
    for one that ended with runs left, a cancel cut short)."""
    with errors_to_exit(), client(home) as api:
        data = api.batches.cancel(app_id, exp_id)
    if as_json:
        print_json(data)
    say(f"experiment {exp_id} is {data['status']}")


@batch_app.command("delete")
def delete_batch(
    app_id: str = AppOption,
    exp_id: str = BatchIdOption,
    confirm: bool = typer.Option(False, "--confirm", help="Yes, delete it and its runs."),
    home: Path | None = HomeOption,
) -> None:
    """Delete an ended experiment with its runs (needs --confirm); any still queued or running
    are canceled first; its input set stays."""
    if not confirm:
        fail(f"deleting experiment {exp_id} also deletes its runs; add --confirm to go ahead")
    with errors_to_exit(), client(home) as api:
        api.batches.delete(app_id, exp_id)
    say(f"deleted experiment {exp_id}")


@batch_app.command("report")
def report(
    app_id: str = AppOption,
    exp_id: str = BatchIdOption,
    html: Path = typer.Option(
        ..., "--html", dir_okay=False, callback=writable_file, help="Write the report here."
    ),
    baseline: str | None = typer.Option(
        None,
        "--baseline",
        help="Compare against this target, TARGET:OPTION_SET with option sets"
        " (default: the experiment's).",
    ),
    gate: str | None = typer.Option(
        None, "--fail-if", metavar="EXPR", help="Show this gate's verdict in the report."
    ),
    home: Path | None = HomeOption,
) -> None:
    """Write a self-contained HTML report (tables and SVG charts) to share or archive in CI."""
    _check_fail_if(gate)
    # Written in place (a FIFO, a symlink stay what they are); opened at the first byte,
    # so a refused request leaves an older report intact.
    with errors_to_exit(), client(home) as api, open_output(html) as fh:
        api.batches.report(app_id, exp_id, fh, baseline, gate)
    say(f"wrote the report of experiment {exp_id} to {html}")
