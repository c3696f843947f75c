"""Command groups whose sub-commands are imported only when they are used.

Every ``orch`` command starts a new interpreter, so importing every command module
up front (the experiments engine, the package builder, rich) would be paid by every
command. A group built here knows its sub-commands by name and module path; the
module is imported, and its Typer turned into a click command, when the command is
invoked, or when help or completion lists it. Everything reads the group's
``commands`` mapping (typer's resolution, help, completion, ``scripts/cli_reference``),
so a lazy mapping is the one place this needs to hook in.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, ClassVar, NamedTuple

import typer
from typer.core import TyperGroup


class Lazy(NamedTuple):
    """Where a sub-command lives: ``module``'s Typer ``attr``, or one ``command`` of it."""

    module: str
    attr: str = "app"
    command: str | None = None

    def load(self, name: str) -> Any:
        app = getattr(importlib.import_module(self.module), self.attr)
        group = typer.main.get_command(app)
        found = group if self.command is None else group.commands[self.command]  # type: ignore[attr-defined]
        found.name = name
        return found


class LazyCommands(MutableMapping[str, Any]):
    """A group's commands: those defined in its module, then the lazy ones, in that order."""

    def __init__(self, eager: Mapping[str, Any], lazy: Mapping[str, Lazy]) -> None:
        self._loaded: dict[str, Any] = dict(eager)
        self._lazy = {name: spec for name, spec in lazy.items() if name not in eager}
        self._order = [*eager, *self._lazy]

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded:
            self._loaded[name] = self._lazy[name].load(name)  # KeyError: no such command
        return self._loaded[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._loaded[name] = command
        if name not in self._order:
            self._order.append(name)

    def __delitem__(self, name: str) -> None:
        self._order.remove(name)
        self._loaded.pop(name, None)
        self._lazy.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, name: object) -> bool:
        return name in self._order


class LazyGroup(TyperGroup):
    """A group whose ``subcommands`` (set by ``lazy_group``) are added lazily. A module-level
    class, so that a group that parses or fails differently (the root, ``app run``) can
    subclass it and pass itself as ``lazy_group``'s ``base``."""

    subcommands: ClassVar[Mapping[str, Lazy]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(self.commands, self.subcommands)


def lazy_group(
    subcommands: Mapping[str, Lazy], base: type[LazyGroup] = LazyGroup
) -> type[LazyGroup]:
    """A group class for ``typer.Typer(cls=...)`` that adds ``subcommands`` lazily."""
    return type(base.__name__, (base,), {"subcommands": dict(subcommands)})
