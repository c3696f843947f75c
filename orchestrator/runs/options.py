"""Model options: manifest defaults < instance options < run options, checked once.

Options reach the model as ``-name value`` arguments, as the Nextmv runtime
passes them. Declared options are type-checked and ``required`` is enforced at
run creation, so a typo fails the request (400) instead of the model; an instance's
options are checked by the same rules when they are set (``required`` aside).
Undeclared options pass through unless the manifest says ``strict: true``:
real apps read options the manifest never mentions.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orchestrator import utf8
from orchestrator.errors import Invalid
from orchestrator.packaging.manifest import Manifest, OptionSpec

SOURCES = ("manifest", "instance", "run")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
MAX_OPTION_BYTES = 128 * 1024 - 1
"""One option's value as one argument: the kernel's ``MAX_ARG_STRLEN`` (128 KiB with its NUL)."""
MAX_OPTIONS_BYTES = 1024 * 1024
"""All options together, half the kernel's ``ARG_MAX`` (the environment needs the rest)."""


@dataclass(frozen=True)
class AppliedOptions:
    values: dict[str, str]
    sources: dict[str, str]

    def argv(self) -> list[str]:
        return option_argv(self.values)

    def summary(self) -> list[dict[str, str]]:
        return [{"name": k, "value": v, "source": self.sources[k]} for k, v in self.values.items()]


@dataclass(frozen=True)
class Undeclared:
    """An option the manifest does not declare: passed to the model as given (unless
    ``strict: true``), which is how a typo reaches no code without a word."""

    name: str
    did_you_mean: str | None
    """The declared name it is closest to, if any is close."""

    def note(self, where: str) -> str:
        """What a user reads; ``where``: whose app.yaml (``version v1``)."""
        hint = f" (did you mean {self.did_you_mean!r}?)" if self.did_you_mean else ""
        return (
            f"option {self.name!r} is not declared in the app.yaml of {where}{hint}; "
            "it is passed to the model as given"
        )

    def to_dict(self, where: str) -> dict[str, str | None]:
        return {"name": self.name, "did_you_mean": self.did_you_mean, "note": self.note(where)}


def undeclared_options(manifest: Manifest, names: Iterable[str]) -> list[Undeclared]:
    """The one decision of which options a manifest does not declare, with the declared
    name each is closest to (``difflib``): strict refusals, the notes in the answers to a
    run's and an instance's creation, and run metadata all ask it."""
    declared = [o.name for o in manifest.options]
    return [
        Undeclared(name, next(iter(difflib.get_close_matches(name, declared, n=1)), None))
        for name in names
        if manifest.option_spec(name) is None
    ]


def option_argv(values: dict[str, str]) -> list[str]:
    """``-name value`` pairs, the way the Nextmv runtime hands options to a model."""
    out: list[str] = []
    for name, value in values.items():
        out += [f"-{name}", value]
    return out


def as_text(value: Any) -> str:
    """Option values are strings on the wire; non-strings are JSON-encoded like the SDK does."""
    return value if isinstance(value, str) else json.dumps(value)


def apply_options(
    manifest: Manifest, instance: dict[str, str], run: dict[str, str]
) -> AppliedOptions:
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    defaults = {o.name: as_text(o.default) for o in manifest.options if o.default is not None}
    for source, layer in zip(SOURCES, (defaults, instance, run), strict=True):
        for name, raw in layer.items():
            values[name] = as_text(raw)
            sources[name] = source
    values = checked_options(manifest, values, sources)
    missing = [o.name for o in manifest.options if o.required and o.name not in values]
    if missing:
        raise Invalid(f"required option(s) missing: {', '.join(missing)}")
    return AppliedOptions(values, sources)


def check_instance_options(manifest: Manifest, options: dict[str, str]) -> None:
    """An instance's options, checked when it is set (created, updated, pointed at another
    version) by the rules its runs use, so a bad one is refused there and not by every run.
    ``required`` is not asked of an instance: its runs may give those options."""
    checked_options(manifest, options, dict.fromkeys(options, "instance"))


def checked_options(
    manifest: Manifest, values: dict[str, str], sources: dict[str, str]
) -> dict[str, str]:
    """The one check of options against a manifest: what a command line carries, declared
    types, and (``strict: true``) undeclared names. The values as the model gets them."""
    _fits_a_command_line(values, sources)
    if manifest.strict_options and (undeclared := undeclared_options(manifest, values)):
        first = undeclared[0]
        declared = ", ".join(o.name for o in manifest.options) or "none"
        hint = f"did you mean {first.did_you_mean!r}? " if first.did_you_mean else ""
        raise Invalid(
            f"option {first.name!r} (from {sources[first.name]}) is not declared in app.yaml, "
            f"which sets strict: true ({hint}declared: {declared})"
        )
    out = dict(values)
    for name, value in values.items():
        spec = manifest.option_spec(name)
        if spec is not None:
            out[name] = _check(spec, value, sources[name])
    return out


def _fits_a_command_line(values: dict[str, str], sources: dict[str, str]) -> None:
    """Options reach the model as arguments: what no command line can carry is refused when
    the run (or the instance) is made, where it failed every start of the model ("embedded
    null byte", "Argument list too long"), and a name no model can read as ``-name`` (empty,
    or with a space or control character: a model got ``-`` or ``-a\\n``)."""
    size = 0
    for name, value in values.items():
        where = f"option {name!r} (from {sources[name]})"
        if "\0" in name or "\0" in value:
            raise Invalid(f"{where} holds a NUL character")
        size += len(utf8.encode(name, f"the name of {where}")) + 3
        if not name or any(c.isspace() or not c.isprintable() for c in name):
            raise Invalid(
                f"{where}: a name must be non-empty, without spaces or control characters"
            )
        encoded = len(utf8.encode(value, where))
        if encoded > MAX_OPTION_BYTES:
            raise Invalid(
                f"{where} is over 128 KiB, more than a command line argument holds: pass"
                " large data in the run's input"
            )
        size += encoded
    if size > MAX_OPTIONS_BYTES:
        raise Invalid("the options are over 1 MiB together: pass large data in the run's input")


def _check(spec: OptionSpec, value: str, source: str) -> str:
    kind = spec.option_type
    try:
        if kind == "int":
            return str(int(value))
        if kind == "float":
            number = float(value)
            if not math.isfinite(number):  # "nan", "inf": a model asked for a number
                raise ValueError(value)
            return repr(number)
        if kind == "bool":
            low = value.strip().lower()
            if low in _TRUE | _FALSE:
                return "true" if low in _TRUE else "false"
            raise ValueError(value)
    except ValueError:
        raise Invalid(
            f"option {spec.name!r} (from {source}) must be {_article(kind)}, got {value!r}"
        ) from None
    return value


def _article(kind: str) -> str:
    return {"int": "an integer", "float": "a number", "bool": "true or false"}.get(kind, kind)
