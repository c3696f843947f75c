"""A command line that click cannot accept is one ``error:`` line, like every other failure.

Left to typer, a bad value, a missing or unknown option or an unknown command prints the
usage, a "Try ... for help" line and the message in a rich panel: five lines for one
mistake, unlike every other error of the CLI (``output.error_line``), and not what a
script's log or a person's eye looks for. The root group catches the usage error where
click raises it (while its own arguments are parsed, or while its sub-command is found
and parsed, which happens inside its ``invoke``), prints the message on one line with a
pointer to the command's help, and exits with the usage error's code (2).

The help a group prints when it is called alone (``NoArgsIsHelpError``, a usage error
too) is left to typer, as is ``-h``: those are asked for, not mistakes.

Typer bundles its own click (``typer._click``, in every version ``pyproject.toml``
allows): its exceptions are the ones raised, so they are the ones caught here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import typer
from typer._click.core import Context
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from typer._click.globals import get_current_context

from orchestrator.cli.lazy import LazyGroup

__all__ = ["Context", "NoArgsIsHelpError", "OneLineUsageErrors", "one_line", "refuse"]


class OneLineUsageErrors(LazyGroup):
    """The root group: usage errors anywhere below it end as one line and exit code 2."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: Context | None = None,
        **extra: Any,
    ) -> Context:
        with _one_line_usage_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Context) -> Any:
        with _one_line_usage_errors():
            return super().invoke(ctx)


@contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    try:
        yield
    except NoArgsIsHelpError:
        raise  # a group called alone: typer prints its help, as before
    except UsageError as exc:
        from orchestrator.cli.output import error_line  # only a failed command pays for it

        if exc.ctx is None:
            exc.ctx = _parsing_context(exc.__traceback__)
        error_line(one_line(exc, _columns()))
        raise typer.Exit(exc.exit_code) from None


def refuse(message: str) -> None:
    """A command-line mistake found by a command's own checks (``fail(..., code=2)``):
    raised as click's usage error of the command being run, so that it reads as click's
    own do, with the pointer to the command's help. Returns when no command runs (a
    function called outside the CLI), for the caller to say it plainly."""
    ctx = get_current_context(silent=True)
    if ctx is not None:
        raise UsageError(message, ctx)


def _parsing_context(tb: TracebackType | None) -> Context | None:
    """The context of the command whose arguments were being parsed when ``tb`` was raised.

    click's parser raises some usage errors without the context it holds (an option
    missing its value: ``orch app run -i``), which left their line without the hint.
    The innermost frame with a ``ctx`` (``Command.parse_args``) has it."""
    found: Context | None = None
    while tb is not None:
        ctx = tb.tb_frame.f_locals.get("ctx")
        if isinstance(ctx, Context):
            found = ctx
        tb = tb.tb_next
    return found


def one_line(exc: UsageError, columns: int | None = None) -> str:
    """Click's message in the CLI's words (lower case first, no final full stop, one
    line), and ``; see 'orch CMD -h'`` when that still fits in ``columns`` with the
    ``error:`` label: a hint that wrapped would make the one line two."""
    message = " ".join(exc.format_message().split())
    if message[:2].istitle():  # "Missing option" → "missing option"; "URL ..." stays
        message = message[0].lower() + message[1:]
    message = message.removesuffix(".")
    hint = _help_of(exc.ctx)
    if hint is None:
        return message
    # "Did you mean 'logs'?" ends a sentence: the hint is the next one
    line = f"{message} See {hint}" if message.endswith("?") else f"{message}; see {hint}"
    if columns is not None and len("error: ") + len(line) >= columns:
        return message
    return line


def _help_of(ctx: Context | None) -> str | None:
    """``'orch daemon start -h'``: how to get the help of the command that was wrong,
    with the first of the help names it kept (a command may use ``-h`` for itself)."""
    if ctx is None:
        return None
    option = ctx.command.get_help_option(ctx)
    if option is None:
        return None
    names: Sequence[str] = [n for n in ctx.help_option_names if n in option.opts]
    return f"'{ctx.command_path} {names[0] if names else option.opts[0]}'"


def _columns() -> int | None:
    """The width of stderr's terminal; None off a terminal, where a line never wraps."""
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns or None
    except (OSError, ValueError, AttributeError):
        return None
