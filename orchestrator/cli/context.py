"""Options every command shares, resolved once per invocation."""

from __future__ import annotations

from pathlib import Path

import typer

from orchestrator.client import OrchClient
from orchestrator.home import Home, default_home

HomeOption = typer.Option(
    None, "--home", envvar="ORCH_HOME", help="Data directory (default: XDG data dir / orch)."
)
JsonOption = typer.Option(False, "--json", help="Print the API object as JSON (for scripts).")
AppOption = typer.Option(..., "--app-id", "-a", envvar="ORCH_APP_ID", help="Application ID.")


def home_of(home: Path | None) -> Home:
    return Home(home.expanduser().resolve()) if home else Home(default_home())


def client(home: Path | None) -> OrchClient:
    return OrchClient.for_home(home_of(home))
