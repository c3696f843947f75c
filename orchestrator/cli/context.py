"""Options every command shares, resolved once per invocation."""

from __future__ import annotations

from pathlib import Path

import typer
from typer._click.core import ParameterSource
from typer._click.globals import get_current_context

from orchestrator.cli.output import fail, say
from orchestrator.client import OrchClient
from orchestrator.client.transport import SLOW_AFTER
from orchestrator.home import Home, default_home

IdValue = str | list[str] | None


def an_id(ctx: typer.Context, param: typer.CallbackParam, value: IdValue) -> IdValue:
    """Typer callback of every option naming an object by its ID: an empty one (``-a
    "$APP"`` with APP unset) is refused before any request. It would name no object, and
    its URL would be the collection's: a GET there lists, a DELETE deletes nothing. One
    with a ``/`` (no ID has one) would reach another route, answered "no such route"."""
    if ctx.resilient_parsing:  # shell completion
        return value
    given = value if isinstance(value, list) else [value]
    flag = max(param.opts, key=len) if param.opts else param.name
    if any(v is not None and not v.strip() for v in given):
        fail(f"{flag} is empty: give an ID (is a shell variable unset?)", code=2)
    if slashed := [v for v in given if v is not None and "/" in v]:  # would name a route
        fail(f"{flag} {slashed[0]!r} is no ID: IDs have no '/'", code=2)
    return value


def chosen_home(ctx: typer.Context, param: typer.CallbackParam, value: Path | None) -> Path | None:
    """Typer callback of every command's ``--home``: the nearest ``--home`` given on the
    command line, from the command itself up to the root (``orch --home DIR app list``,
    ``orch app run --home DIR logs ...``), so that the command's own wins; else its value
    from ``ORCH_HOME``, or None (the default home). The root's ``--home`` reads no
    environment variable: ``ORCH_HOME`` never overrides a flag typed at either place."""
    name = param.name or "home"
    if ctx.resilient_parsing:
        return value
    if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE:
        ctx.meta[TYPED_HOME] = True
        return value
    outer = ctx.parent
    while outer is not None:
        if outer.get_parameter_source(name) is ParameterSource.COMMANDLINE:
            ctx.meta[TYPED_HOME] = True
            given: Path | None = outer.params[name]
            return given
        outer = outer.parent
    return value


TYPED_HOME = "orch.typed_home"
"""Set in the click context's ``meta`` when ``--home`` was typed: that home's daemon is
the one to talk to, whatever ``ORCH_URL`` (exported for another home, maybe) says."""


HomeOption = typer.Option(
    None,
    "--home",
    envvar="ORCH_HOME",
    callback=chosen_home,
    help="Data directory (default: XDG data dir / orch).",
)
JsonOption = typer.Option(False, "--json", help="Print the API object as JSON (for scripts).")
AppOption = typer.Option(
    ..., "--app-id", "-a", envvar="ORCH_APP_ID", callback=an_id, help="Application ID."
)


def home_of(home: Path | None) -> Home:
    return Home(home.expanduser().resolve()) if home else Home(default_home())


def client(home: Path | None) -> OrchClient:
    ctx = get_current_context(silent=True)
    typed = ctx is not None and bool(ctx.meta.get(TYPED_HOME))
    api = OrchClient.for_home(home_of(home), environment=not typed)
    api.http.on_slow = lambda: say(
        f"the daemon at {api.url} has not answered for {SLOW_AFTER:g} s; still waiting"
        " (if it never does: orch daemon stop, then orch daemon start)"
    )
    return api
