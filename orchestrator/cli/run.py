"""``orch app run``: start a run (optionally wait for it), and ``orch app run <action>``.

``orch app run -a APP ...`` is both a command and a group, as in the nextmv CLI:
without a sub-command it creates a run; with one it reads or manages runs (those
live in ``run_actions`` and are imported only when used: this module is the hot
path of the command people type most). ``-a``, ``--home`` and ``--json`` typed before
an action are its own (``orch app run -a APP list``); the run's other options are not.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

import typer
from typer._click.core import Command, ParameterSource

from orchestrator.cli.context import HomeOption, JsonOption, an_id, client
from orchestrator.cli.flags import (
    CpuOption,
    DiskMbOption,
    MemoryOption,
    OptionsOption,
    OutputMbOption,
    RetriesOption,
    SecretsCollectionOption,
    TimeoutOption,
    WaitOption,
    flag_of,
    limits_body,
    limits_named_as_flags,
    parse_options,
    tail_option,
)
from orchestrator.cli.lazy import Lazy, LazyGroup, lazy_group
from orchestrator.cli.output import (
    at_terminal,
    emit,
    errors_to_exit,
    fail,
    live,
    note_undeclared,
    say,
    writable_file,
)
from orchestrator.cli.run_input import Scratch, read_input
from orchestrator.cli.run_output import deliver
from orchestrator.cli.run_wait import Waiter
from orchestrator.cli.usage import Context, NoArgsIsHelpError
from orchestrator.client import ClientError, OrchClient

InputFormat = Literal["json", "text", "multi-file", "csv-archive"]
ACTIONS = ("result", "metadata", "input", "logs", "list", "cancel", "delete")
TRACKED_ACTIONS = ("track", "compare", "assets")
SHARED = ("app_id", "home", "as_json")
"""The options of ``orch app run`` its actions have too: typed before an action, they
are the action's (as ``orch app run -a APP list`` reads)."""


class RunGroup(LazyGroup):
    """``orch app run`` alone shows its help only when stdin is a terminal.

    Piped into (``cat in.json | orch app run`` with ``ORCH_APP_ID`` set) it is a complete
    command: the app from the environment, the input from stdin, as ``--input``'s help
    says. Typer's ``no_args_is_help`` cannot tell the two apart, and showed the help
    (exit 2) to the pipe. With stdin at a terminal nothing is typed yet, so the help is
    what helps, as for every other group called alone."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if not args and at_terminal(sys.stdin) and not ctx.resilient_parsing:
            raise NoArgsIsHelpError(ctx)
        return super().parse_args(ctx, args)

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        """The action, with the options typed before it put first among its own.

        They were dropped: ``orch app run -a APP result -r R`` missed its -a, and
        ``--json`` before ``result`` printed no JSON. Handed over as the action's own
        arguments, not as its defaults (``default_map``): a default gives way to
        ``ORCH_APP_ID``, and an -a typed must win over the environment, as it does
        everywhere. Put first, they give way to the same option typed after the action
        (click keeps an option's last value)."""
        name, action, rest = super().resolve_command(ctx, args)
        if action is None or name is None or ctx.resilient_parsing:  # completion
            return name, action, rest
        return name, action, [*_handed_over(ctx, name, action), *rest]


app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,  # RunGroup decides, by where stdin is
    cls=lazy_group(
        {name: Lazy("orchestrator.cli.run_actions", command=name) for name in ACTIONS}
        | {name: Lazy("orchestrator.cli.run_tracked", command=name) for name in TRACKED_ACTIONS},
        base=RunGroup,
    ),
)

OutputFileOption = typer.Option(
    None,
    "--output",
    "-u",
    dir_okay=False,
    callback=writable_file,
    help="Write the output to this file instead of stdout (waits for the run, as --wait).",
)


@app.callback()
def create(
    ctx: typer.Context,
    app_id: str | None = typer.Option(
        None, "--app-id", "-a", envvar="ORCH_APP_ID", callback=an_id, help="Application ID."
    ),
    source: str | None = typer.Option(
        None,
        "--input",
        "-i",
        metavar="FILE|DIR|-",
        help="Input: a JSON or text file, a folder (sent as tar.gz), or - for stdin "
        "(default: stdin when it is not a terminal).",
    ),
    instance: str | None = typer.Option(
        None,
        "--instance-id",
        "--instance",
        callback=an_id,
        help="Instance to run (default: devint; 'default' = the app's).",
    ),
    ensemble: str | None = typer.Option(
        None,
        "--ensemble-definition-id",
        "-e",
        "--definition-id",
        callback=an_id,
        help="Run this ensemble definition: its run groups' instances, the best run's output.",
    ),
    options: list[str] | None = OptionsOption,
    name: str = typer.Option("", "--name", "-n", help="Run name."),
    description: str = typer.Option("", "--description", "-d", help="Run description."),
    priority: int | None = typer.Option(None, "--priority", min=1, max=9, help="1 (first) to 9."),
    timeout: float | None = TimeoutOption,
    memory_mb: int | None = MemoryOption,
    cpu_seconds: float | None = CpuOption,
    output_mb: int | None = OutputMbOption,
    disk_mb: int | None = DiskMbOption,
    retries: int | None = RetriesOption,
    secrets_collection_id: str | None = SecretsCollectionOption,
    fmt: InputFormat | None = typer.Option(
        None,
        "--format",
        help="Input format (default: the app's; for a folder, multi-file or csv-archive).",
    ),
    wait: bool = WaitOption,
    tail: bool = tail_option("Wait, showing the run's log live on stderr."),
    output: Path | None = OutputFileOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Run an app (on devint by default), or read and manage its runs with an action.

    Without --wait: prints the run ID, so RUN=$(orch app run -a APP -i in.json) works.

    With --wait: prints the output (--json: the whole result), a summary on stderr; at a
    terminal, the run's state and time while it waits. Ctrl-C stops waiting, not the run.
    --output FILE and --tail wait too (as the nextmv CLI's --output does).

    Exit code when waiting: 0 if the run succeeded, 1 if it failed, 2 if canceled,
    130 if interrupted.
    """
    if ctx.invoked_subcommand is not None:
        return
    if app_id is None:
        fail("missing option -a/--app-id (or set ORCH_APP_ID)", code=2)
    limits = limits_body(memory_mb, cpu_seconds, timeout, output_mb, disk_mb, retries)
    configuration = _configuration(priority, limits)
    if ensemble is not None:
        if instance is not None:
            fail(
                "an ensemble run (-e) uses its run groups' instances: leave out --instance-id",
                code=2,
            )
        configuration["run_type"] = {"type": "ensemble", "definition_id": ensemble}
    if secrets_collection_id:
        configuration["secrets_collection_id"] = secrets_collection_id
    body = {"options": parse_options(options), "name": name, "description": description}
    with Scratch() as tmp:
        run_input = read_input(source, fmt, tmp)  # checked before any run exists
        with errors_to_exit(), client(home) as api:
            run_input = run_input.fitted(api, app_id, instance, ensemble)  # JSON asks nothing
            if run_input.fmt:
                configuration["format"] = {"input": {"type": run_input.fmt}}
            body |= run_input.body(api, app_id, tmp) | {"configuration": configuration}
            try:
                with limits_named_as_flags():
                    target = None if ensemble else instance or "devint"
                    created = api.runs.create(app_id, body, target)
            except ClientError as refusal:
                run_input.refused(api, app_id, instance, ensemble, refusal)
                raise
            note_undeclared(created)
            if not (wait or tail or output is not None):  # an output to write is waited for
                emit(created, as_json, lambda d: typer.echo(d["run_id"]))
                return
            code = _wait_and_deliver(api, app_id, created["run_id"], tail, output, as_json, home)
    raise typer.Exit(code)


def _handed_over(ctx: Context, name: str, action: Command) -> list[str]:
    """The options typed before the action, as arguments of the action. Those of
    creating a run are refused (exit 2): silently dropped, ``-w`` or ``-i`` before
    ``result`` looked taken."""
    words: list[str] = []
    for param in ctx.command.params:
        if (
            param.name is None
            or ctx.get_parameter_source(param.name) is not ParameterSource.COMMANDLINE
        ):
            continue
        flag = flag_of(param)
        own = any(flag in p.opts for p in action.params)
        if param.name not in SHARED or not own:
            after = f" when typed before it: give it after {name!r}" if own else ""
            fail(f"{flag} does not apply to '{ctx.command_path} {name}'{after}", code=2)
        value = ctx.params[param.name]
        words.append(flag if value is True else f"{flag}={value}")
    return words


def _wait_and_deliver(
    api: OrchClient,
    app_id: str,
    run_id: str,
    tail: bool,
    output: Path | None,
    as_json: bool,
    home: Path | None,
) -> int:
    """Wait for the run (live at a terminal), print what it produced; the exit code."""
    if not live(sys.stderr):
        say(f"run {run_id} started, waiting for it to finish")
    home_flag = f" --home {home}" if home else ""
    info = Waiter(api, app_id, run_id, tail, home_flag).wait()
    return deliver(api, app_id, info, output, as_json, logs=tail, home=home)


def _configuration(priority: int | None, limits: dict[str, Any]) -> dict[str, Any]:
    configuration: dict[str, Any] = {}
    if priority is not None:
        configuration["queuing"] = {"priority": priority}
    if limits:
        configuration["limits"] = limits
    return configuration
