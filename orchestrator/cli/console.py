"""``orch console``: open the web console with a one-time login link."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from urllib.parse import quote

import typer

from orchestrator.cli.context import HomeOption, client
from orchestrator.cli.output import errors_to_exit, fail, say

app = typer.Typer(add_completion=False)  # completion is the root command's


@app.command("console")
def open_console(
    page: str = typer.Argument(
        "/apps",
        help="The console page to land on, e.g. /runs or /apps/knapsack (runs is /runs).",
    ),
    no_browser: bool = typer.Option(
        False, "--no-browser", help="Print the login link instead of opening a browser."
    ),
    home: Path | None = HomeOption,
) -> None:
    """Open the web console in the browser (a login link that works once, for 2 minutes)."""
    page = console_path(page)
    with errors_to_exit(), client(home) as api:
        link = api.console_link()
    if page != "/apps":
        link += "&next=" + quote(page, safe="/")
    if no_browser or not webbrowser.open(link):
        if not no_browser:
            say("no browser could be opened here: open this link (it works once, for 2 minutes)")
        typer.echo(link)
        return
    say("opened the console in your browser (the link it used works once)")


def console_path(page: str) -> str:
    """The page as a path from the console's root: ``runs`` is ``/runs`` (every console page
    is one, so a relative path has no other meaning). A URL, ``//host`` or nothing is a
    command-line mistake (exit 2): the console only lands on its own pages."""
    first = page.split("/", 1)[0]
    if not page or page.startswith("//") or ":" in first:
        fail(f"the page must be a path on the console, like /runs (got {page!r})", code=2)
    return page if page.startswith("/") else f"/{page}"
