"""The ``orch`` entry point: assembles the command groups."""

from __future__ import annotations

import typer

from orchestrator import __version__
from orchestrator.cli import app, console, daemon, experiment

cli = typer.Typer(
    name="orch",
    help="orch: a local, offline run orchestrator for decision models (Nextmv custom apps).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
cli.add_typer(daemon.app, name="daemon")
cli.add_typer(app.app, name="app")
cli.add_typer(experiment.app, name="experiment")
cli.command("console")(console.open_console)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"orch {__version__}")
        raise typer.Exit()


@cli.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """orch keeps apps, versions, instances and runs in a local daemon."""


def main() -> None:
    cli()
