"""The ``orch`` entry point: the root group, whose command groups load on first use.

Only ``typer`` and this module are imported before the arguments are parsed; the
module of the command being run is imported then (see ``lazy``), so ``orch
--version`` or ``orch app list`` never pay for the experiments engine, the package
builder or the server stack.
"""

from __future__ import annotations

from pathlib import Path

import typer

from orchestrator import __version__
from orchestrator.cli import stdout
from orchestrator.cli.lazy import Lazy, lazy_group
from orchestrator.cli.usage import OneLineUsageErrors

GROUPS = {
    "daemon": Lazy("orchestrator.cli.daemon"),
    "app": Lazy("orchestrator.cli.app"),
    "experiment": Lazy("orchestrator.cli.experiment"),
    "ensemble": Lazy("orchestrator.cli.ensemble"),
    "queue": Lazy("orchestrator.cli.queue"),
    "console": Lazy("orchestrator.cli.console"),
}
"""Top-level command groups, in help order: name → the module holding its Typer."""

cli = typer.Typer(
    name="orch",
    help="orch: a local, offline run orchestrator for decision models (Nextmv custom apps).",
    cls=lazy_group(GROUPS, base=OneLineUsageErrors),  # a wrong command line: one error line
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"orch {__version__}")
        raise typer.Exit()


@cli.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
    home: Path | None = typer.Option(
        None,
        "--home",
        metavar="DIR",
        help="Data directory of the command that follows, as its own --home (which wins if "
        "both are given); default: ORCH_HOME, else XDG data dir / orch.",
    ),
) -> None:
    """orch keeps apps, versions, instances and runs in a local daemon.

    ``--home`` here is read by the command's own ``--home`` (``context.chosen_home``), so
    ``orch --home DIR app list`` works as the flag's place in other CLIs leads people to
    type it; nothing is resolved here, so ``orch --version`` pays for nothing."""


def main() -> None:
    """Run the command; a failed write to stdout ends it with one line and exit code 1."""
    stdout.guard()
    try:
        try:
            cli()
        finally:
            stdout.finish()
    except BrokenPipeError:  # the reader went away (``| head``): nothing to say
        stdout.discard()
        raise SystemExit(1) from None
    except stdout.StdoutError as exc:
        where = stdout.where()
        stdout.discard()
        from orchestrator.cli.output import error_line

        error_line(f"cannot write {where}: {exc.strerror}")
        raise SystemExit(1) from None
