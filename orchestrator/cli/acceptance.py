"""``orch experiment acceptance ...``: a go/no-go verdict, candidate instance vs control.

An acceptance test is a view on the batch experiment with the same ID (``-b``): ``create``
with ``-s`` starts that experiment (every input on both instances), otherwise it must
exist. Metrics come as Nextmv's JSON (``--metrics``) or in a short form (``--metric``):

    FIELD STATISTIC OP [TOLERANCE[%]]     e.g.  "result.value mean le 1%"

OP is eq gt ge lt le ne (or == > >= < <= !=); a tolerance ending in % is relative.
The daemon computes every statistic and verdict; with ``--wait`` the exit code is the
verdict: 0 passed, 1 failed (or no run succeeded), 2 canceled.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import typer

from orchestrator.cli import acceptance_view as view
from orchestrator.cli import experiment_view
from orchestrator.cli.context import AppOption, HomeOption, JsonOption, an_id, client
from orchestrator.cli.experiment_wait import keeps_running, until_ended
from orchestrator.cli.flags import WaitOption, require_label_change
from orchestrator.cli.input_set import DescriptionOption, NameOption
from orchestrator.cli.output import command_line, emit, errors_to_exit, fail, print_json, say
from orchestrator.client import OrchClient
from orchestrator.client.types import AcceptanceTest
from orchestrator.errors import OrchError
from orchestrator.experiments.acceptance_eval import parse_metrics
from orchestrator.experiments.criteria import Operator

app = typer.Typer(
    help="Acceptance tests: a candidate instance against a control, metric by metric.",
    no_args_is_help=True,
)

EXAMPLE = "result.value mean le 1%"
_SHORT = re.compile(
    r"\s*(?P<field>[A-Za-z_][\w.\-]*)\s+(?P<stat>\w+)\s+(?P<op>eq|gt|ge|lt|le|ne|==|>=|<=|!=|>|<)"
    r"(?:\s+(?P<tol>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(?P<pct>%)?)?\s*"
)
TestIdOption = typer.Option(
    ...,
    "--batch-experiment-id",
    "-b",
    callback=an_id,
    help="Acceptance test ID (= its batch experiment's).",
)
ControlOption = typer.Option(
    ..., "--baseline-instance-id", callback=an_id, help="The control instance."
)
CandidateOption = typer.Option(
    ..., "--candidate-instance-id", callback=an_id, help="The candidate instance."
)
MetricOption = typer.Option(
    None, "--metric", help="FIELD STATISTIC OP [TOLERANCE[%]], e.g. 'result.value mean le 1%'."
)
MetricsOption = typer.Option(
    None, "--metrics", metavar="JSON|@FILE", help="Nextmv Metric objects (one or a list)."
)
SetOption = typer.Option(
    None,
    "--input-set-id",
    "-s",
    callback=an_id,
    help="Start the batch experiment on this input set first.",
)


def short_metric(text: str) -> dict[str, Any]:
    """``--metric`` as Nextmv's Metric JSON (the daemon checks the statistic's name)."""
    match = _SHORT.fullmatch(text)
    if match is None:
        fail(
            f"--metric {text!r}: expected FIELD STATISTIC OP [TOLERANCE[%]], e.g. {EXAMPLE!r}",
            code=2,
        )
    value = float(match["tol"] or 0)
    kind = "relative" if match["pct"] else "absolute"
    return {
        "field": match["field"],
        "metric_type": "direct-comparison",
        "params": {
            "operator": _operator(match["op"]),
            "tolerance": {"type": kind, "value": value / 100 if match["pct"] else value},
        },
        "statistic": match["stat"],
    }


def _operator(text: str) -> str:
    """``le`` or ``<=``: the name either way."""
    return text if text.isalpha() else Operator.from_symbol(text).value


def json_metrics(texts: list[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for text in texts:
        try:
            raw = Path(text[1:]).expanduser().read_text() if text.startswith("@") else text
            data = json.loads(raw)
        except (OSError, ValueError) as exc:
            fail(f"--metrics: {exc}", code=2)
        found += data if isinstance(data, list) else [data]
    return found


@app.command("create")
def create(
    app_id: str = AppOption,
    test_id: str = TestIdOption,
    control: str = ControlOption,
    candidate: str = CandidateOption,
    metric: list[str] | None = MetricOption,
    metrics: list[str] | None = MetricsOption,
    set_id: str | None = SetOption,
    name: str | None = typer.Option(None, "--name", "-n", help="Name (default: the ID)."),
    description: str = typer.Option("", "--description", "-d", help="Description."),
    wait: bool = WaitOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Create an acceptance test (and, with -s, its batch experiment).

    Exit code with --wait: 0 passed, 1 failed or no run succeeded, 2 canceled.
    """
    found = [short_metric(m) for m in metric or []] + json_metrics(metrics or [])
    if not found:
        fail("give at least one --metric (or --metrics)", code=2)
    _check_metrics(found)
    with errors_to_exit(), client(home) as api:
        if set_id is not None:
            batch: dict[str, Any] = {"id": test_id, "name": name, "input_set_id": set_id}
            batch |= {"instance_ids": [control, candidate], "baseline": control}
            api.batches.start(app_id, {k: v for k, v in batch.items() if v is not None})
        body = {
            "id": test_id,
            "name": name,
            "description": description,
            "control": {"instance_id": control},
            "candidate": {"instance_id": candidate},
            "metrics": found,
        }
        test = api.acceptance.create(app_id, {k: v for k, v in body.items() if v is not None})
        follow = "" if wait else f"; follow it with: {_follow(app_id, test['id'], home)}"
        metrics_text = experiment_view.count_of(len(found), "metric")
        with keeps_running(f"acceptance test {test['id']}", _follow(app_id, test["id"], home)):
            say(f"acceptance test {test['id']} created ({metrics_text}){follow}")
            if not wait:
                emit(test, as_json, lambda t: typer.echo(t["id"]))
                return
            test = _wait(api, app_id, test_id, home)
    raise typer.Exit(_show_verdict(test, as_json))


def _check_metrics(found: list[dict[str, Any]]) -> None:
    """The daemon's own check, made here too: a typo (statistic ``avg``) must not start an
    experiment first, and is a command-line mistake (exit 2). A field no run reports can
    only be found by the daemon, once the runs have ended."""
    try:
        parse_metrics(found)
    except OrchError as exc:
        fail(exc.message, code=2)


@app.command("get")
def get(
    app_id: str = AppOption,
    test_id: str = TestIdOption,
    wait: bool = typer.Option(
        False, "--wait", "-w", help="Wait for the verdict; exit 0 passed, 1 failed, 2 canceled."
    ),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Show an acceptance test: its instances, and each metric's statistics and verdict."""
    with errors_to_exit(), client(home) as api:
        test = _wait(api, app_id, test_id, home) if wait else api.acceptance.get(app_id, test_id)
    code = _show_verdict(test, as_json)
    raise typer.Exit(code if wait else 0)


def _follow(app_id: str, test_id: str, home: Path | None) -> str:
    """The command that waits for the verdict, to paste."""
    return (
        command_line("experiment acceptance get", ("-a", app_id), ("-b", test_id), home=home)
        + " --wait"
    )


def _wait(api: OrchClient, app_id: str, test_id: str, home: Path | None) -> AcceptanceTest:
    """Poll until the batch experiment ends (progress on stderr); Ctrl-C stops waiting."""
    with keeps_running(f"acceptance test {test_id}", _follow(app_id, test_id, home)):
        until_ended(api, app_id, test_id)
        return api.acceptance.get(app_id, test_id)


def _show_verdict(test: AcceptanceTest, as_json: bool) -> int:
    """Print the test; the exit code of its verdict (0 passed, 1 failed, 2 canceled)."""
    emit(test, as_json, view.acceptance_test)
    if test["status"] == "started":
        return 0
    verdict = view.verdict(test)
    say(f"acceptance test {test['id']} {test['status']}: {verdict}")
    if test["status"] == "canceled":
        return 2
    return 0 if verdict == "passed" else 1


@app.command("list")
def list_tests(
    app_id: str = AppOption, home: Path | None = HomeOption, as_json: bool = JsonOption
) -> None:
    """List the app's acceptance tests with their verdicts."""
    with errors_to_exit(), client(home) as api:
        data = api.acceptance.list(app_id)
    emit(data, as_json, view.acceptance_tests)


@app.command("update")
def update(
    app_id: str = AppOption,
    test_id: str = TestIdOption,
    name: str | None = NameOption,
    description: str | None = DescriptionOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Rename an acceptance test or change its description."""
    require_label_change(name, description)
    with errors_to_exit(), client(home) as api:
        test = api.acceptance.update(app_id, test_id, name, description)
    if as_json:
        print_json(test)
    say(f"updated acceptance test {test_id}")


@app.command("delete")
def delete(
    app_id: str = AppOption,
    test_id: str = TestIdOption,
    confirm: bool = typer.Option(False, "--confirm", help="Yes, delete it, its experiment, runs."),
    home: Path | None = HomeOption,
) -> None:
    """Delete an acceptance test with its batch experiment and runs (needs --confirm)."""
    if not confirm:
        fail(
            f"deleting acceptance test {test_id} also deletes its batch experiment and runs;"
            " add --confirm to go ahead"
        )
    with errors_to_exit(), client(home) as api:
        api.acceptance.delete(app_id, test_id)
    say(f"deleted acceptance test {test_id}")
