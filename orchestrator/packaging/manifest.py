"""The ``app.yaml`` manifest: one parser shared by ``orch app push`` and the daemon.

The parser is deliberately permissive about what it does not use (``pre-push``,
``build``, ``ui``... are kept in ``raw`` and ignored) and strict about what it does
use, because a field we misread turns into a confusing run failure much later.
It accepts every manifest the nextmv SDK (1.13) accepts for the fields we read,
with one exception: ``type`` is required here, since guessing "python" for a Go
binary would only fail at run time.
"""

from __future__ import annotations

import datetime
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import Unprocessable

MANIFEST_FILE = "app.yaml"
APP_TYPES = ("python", "go", "java", "binary")
OPTION_TYPES = ("bool", "float", "int", "string")
CONTENT_FORMATS = ("json", "text", "multi-file", "csv-archive")
DEFAULT_ENTRYPOINTS = {"python": "main.py", "go": "main", "binary": "main", "java": "main.jar"}
DEFAULT_RUNTIMES = {
    "python": "ghcr.io/nextmv-io/runtime/python:3.11",
    "java": "ghcr.io/nextmv-io/runtime/java:latest",
    "go": "ghcr.io/nextmv-io/runtime/default:latest",
    "binary": "ghcr.io/nextmv-io/runtime/default:latest",
}
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_MANIFEST_VALUES = 100_000
"""Bounds a YAML alias bomb: ``raw`` is stored as JSON, so aliases get expanded."""
MAX_MANIFEST_DEPTH = 64
"""Levels of nesting: app.yaml needs a handful; pyyaml fails past a few hundred."""


def _fail(where: str, problem: str) -> Unprocessable:
    return Unprocessable(f"{MANIFEST_FILE}: {where} {problem}")


@dataclass(frozen=True)
class OptionSpec:
    """One declared option; ``default`` keeps its YAML type (the executor stringifies)."""

    name: str
    option_type: str
    default: Any = None
    required: bool = False
    description: str = ""
    local_only: bool = False
    additional_attributes: dict[str, Any] | None = None
    ui: dict[str, Any] | None = None


@dataclass(frozen=True)
class MultiFile:
    """Where a multi-file app reads and writes, relative to the run's working directory.

    Defaults follow what the SDK's ``nextmv.write`` uses, so an app that relies on
    them writes exactly where the executor looks.
    """

    input_path: str = "inputs"
    solutions: str = "outputs/solutions"
    metrics: str = "outputs/metrics.json"
    statistics: str = "outputs/statistics.json"
    assets: str = "outputs/assets.json"


@dataclass(frozen=True)
class Manifest:
    type: str
    runtime: str
    files: list[str]
    entrypoint: str
    """Relative POSIX path from the package root, normalized (``./main`` → ``main``)."""
    cwd: str | None = None
    pip_requirements: str | list[str] | None = None
    python_version: str | None = None
    options: list[OptionSpec] = field(default_factory=list)
    strict_options: bool = False
    enforce_options: bool = False
    options_format: list[str] | None = None
    content_format: str = "json"
    multi_file: MultiFile = field(default_factory=MultiFile)
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, text: str | bytes) -> Manifest:
        if len(text) > MAX_MANIFEST_BYTES:
            raise Unprocessable(f"{MANIFEST_FILE} is larger than {MAX_MANIFEST_BYTES} bytes")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise _yaml_error(exc, text) from None
        except RecursionError:  # pyyaml composes nested nodes recursively: no depth limit
            raise _too_deep() from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        if not isinstance(data, dict):
            kind = "empty" if data is None else f"a {type(data).__name__}"
            raise Unprocessable(f"{MANIFEST_FILE} must be a mapping of settings, but it is {kind}")
        return _parse(_jsonable(data, "", [MAX_MANIFEST_VALUES]))

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read ``path`` (an ``app.yaml`` file) without trusting its size."""
        with path.open("rb") as fh:
            text = fh.read(MAX_MANIFEST_BYTES + 1)
        return cls.from_yaml(text)

    def option_spec(self, name: str) -> OptionSpec | None:
        return next((o for o in self.options if o.name == name), None)

    def entrypoint_argv(self, python: str, package_dir: str | None = None) -> list[str]:
        """The command that starts the model.

        Paths are relative to the package root unless ``package_dir`` is given, in
        which case they are absolute, for runs whose working directory is elsewhere
        (``execution.cwd`` or a run directory).
        """
        target = (
            posixpath.normpath(posixpath.join(package_dir, self.entrypoint))
            if package_dir
            else self.entrypoint
        )
        if self.type == "python":
            return [python, target]
        if self.type == "java":
            return ["java", "-jar", target]
        return [target if package_dir else f"./{target}"]


def _yaml_error(exc: yaml.YAMLError, text: str | bytes) -> Unprocessable:
    """pyyaml's message (up to seven lines, with a drawing of the spot) as one line: the
    problem, then where, counted from 1 as editors do; failures are one line everywhere."""
    if isinstance(exc, yaml.reader.ReaderError) and exc.encoding != "unicode":
        data = text if isinstance(text, bytes) else text.encode()
        where = _line_column(data.decode("latin-1"), exc.position)  # a char per byte
        return Unprocessable(
            f"{MANIFEST_FILE} is not {exc.encoding.upper()} text: byte {exc.character:#04x} "
            f"{where} ({exc.reason})"
        )
    if isinstance(exc, yaml.reader.ReaderError):
        chars = text if isinstance(text, str) else text.decode("utf-8", "replace")
        problem = f"unacceptable character #x{exc.character:04x}: {exc.reason}"
        problem += f" {_line_column(chars, exc.position)}"
    elif isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        problem = exc.problem + _at(exc.problem_mark)
        problem += f" ({exc.context}{_at(exc.context_mark)})" if exc.context else ""
    else:
        problem = " ".join(str(exc).split())
    return Unprocessable(f"{MANIFEST_FILE} is not valid YAML: {problem}")


def _at(mark: yaml.Mark | None) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""


def _line_column(text: str, position: int) -> str:
    before = text[:position]
    line, column = before.count("\n") + 1, position - before.rfind("\n")
    return f"at line {line}, column {column}"


def _too_deep() -> Unprocessable:
    return Unprocessable(
        f"{MANIFEST_FILE} is nested too deeply (more than {MAX_MANIFEST_DEPTH} levels)"
    )


def _jsonable(value: Any, where: str, budget: list[int], depth: int = 0) -> Any:
    """A JSON-safe copy of YAML data: ``raw`` is stored as JSON and returned as is.

    YAML produces dates, non-string keys (``on:`` is ``True``) and shared alias
    nodes; the budget stops an alias bomb from expanding into gigabytes, the depth a
    nesting that no app.yaml needs from reaching Python's recursion limit here or later.
    """
    budget[0] -= 1
    if budget[0] < 0:
        raise Unprocessable(f"{MANIFEST_FILE} has more than {MAX_MANIFEST_VALUES} values")
    if depth > MAX_MANIFEST_DEPTH:
        raise _too_deep()
    if isinstance(value, dict):
        return {
            str(k): _jsonable(v, f"{where}.{k}" if where else str(k), budget, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set):
        return [_jsonable(v, f"{where}[{i}]", budget, depth + 1) for i, v in enumerate(value)]
    if isinstance(value, datetime.date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise _fail(where, f"has a value of unsupported type {type(value).__name__}")


def _mapping(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(where, f"must be a mapping, got {_describe(value)}")
    return value


def _describe(value: Any) -> str:
    return (
        f"{type(value).__name__} {value!r}"
        if not isinstance(value, list | dict)
        else (type(value).__name__)
    )


def _bool(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _fail(where, f"must be true or false, got {value!r}")
    return value


def _str(value: Any, where: str, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, f"must be a non-empty string, got {_describe(value)}")
    return value.strip()


def relative_path(value: Any, where: str) -> str:
    """Normalize a path the manifest points into the package or run directory.

    Absolute paths and ``..`` are refused: the daemon would otherwise read (or run)
    files outside the directories it controls.
    """
    text = _str(value, where, "")
    if "\0" in text:
        raise _fail(where, f"{text!r} contains a NUL character")
    if text.startswith("/"):
        raise _fail(where, f"{text!r} must be a relative path")
    norm = posixpath.normpath(text)
    if norm == ".." or norm.startswith("../"):
        raise _fail(where, f"{text!r} points outside the package")
    return norm


def _parse(data: dict[str, Any]) -> Manifest:
    app_type = data.get("type")
    if app_type is None:
        raise _fail("type", f"is required (one of {', '.join(APP_TYPES)})")
    if app_type not in APP_TYPES:
        raise _fail("type", f"{app_type!r} is not one of {', '.join(APP_TYPES)}")
    python = _mapping(data, "python", "python")
    execution = _mapping(data, "execution", "execution")
    entrypoint = execution.get("entrypoint")
    cwd = relative_path(execution["cwd"], "execution.cwd") if execution.get("cwd") else None
    version = python.get("version")
    return Manifest(
        type=app_type,
        runtime=_str(data.get("runtime"), "runtime", DEFAULT_RUNTIMES[app_type]),
        files=_files(data.get("files")),
        entrypoint=relative_path(
            DEFAULT_ENTRYPOINTS[app_type] if entrypoint is None else entrypoint,
            "execution.entrypoint",
        ),
        cwd=None if cwd == "." else cwd,
        pip_requirements=_pip_requirements(python),
        python_version=None if version is None else str(version),
        raw=data,
        **_configuration(_mapping(data, "configuration", "configuration")),
    )


def _files(value: Any) -> list[str]:
    if value is None:
        raise _fail("files", "is required: a list of file globs to include in the package")
    if not isinstance(value, list) or not value:
        raise _fail("files", f"must be a non-empty list of globs, got {_describe(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip() or item.strip() == "!":
            raise _fail(f"files[{index}]", f"must be a non-empty glob string, got {item!r}")
    return [item.strip() for item in value]


def _pip_requirements(python: dict[str, Any]) -> str | list[str] | None:
    key = "pip-requirements" if "pip-requirements" in python else "pip_requirements"
    value = python.get(key)
    where = f"python.{key}"
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return relative_path(value, where)
    if isinstance(value, list):
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise _fail(f"{where}[{index}]", f"must be a requirement string, got {item!r}")
        return list(value)
    raise _fail(where, f"must be a file name or a list of requirements, got {_describe(value)}")


def _configuration(config: dict[str, Any]) -> dict[str, Any]:
    options = _mapping(config, "options", "configuration.options")
    content = _mapping(config, "content", "configuration.content")
    items = options.get("items")
    if items is not None and not isinstance(items, list):
        raise _fail("configuration.options.items", f"must be a list, got {_describe(items)}")
    specs = [
        _option(item, f"configuration.options.items[{i}]") for i, item in enumerate(items or [])
    ]
    seen: set[str] = set()
    for index, spec in enumerate(specs):
        if spec.name in seen:
            raise _fail(f"configuration.options.items[{index}].name", f"{spec.name!r} is repeated")
        seen.add(spec.name)
    validation = _mapping(options, "validation", "configuration.options.validation")
    enforce = validation.get("enforce", "none")
    if enforce not in ("none", "all"):
        raise _fail("configuration.options.validation.enforce", f"{enforce!r} is not none or all")
    fmt = options.get("format")
    if fmt is not None and not (isinstance(fmt, list) and all(isinstance(f, str) for f in fmt)):
        raise _fail("configuration.options.format", f"must be a list of strings, got {fmt!r}")
    content_format = content.get("format") or "json"
    if content_format not in CONTENT_FORMATS:
        raise _fail(
            "configuration.content.format",
            f"{content_format!r} is not one of {', '.join(CONTENT_FORMATS)}",
        )
    return {
        "options": specs,
        "strict_options": _bool(options.get("strict"), "configuration.options.strict"),
        "enforce_options": enforce == "all",
        "options_format": fmt,
        "content_format": content_format,
        "multi_file": _multi_file(content),
    }


def _option(item: Any, where: str) -> OptionSpec:
    if not isinstance(item, dict):
        raise _fail(where, f"must be a mapping with at least name and option_type, got {item!r}")
    name = _str(item.get("name"), f"{where}.name", "")
    if not name:
        raise _fail(f"{where}.name", "is required")
    type_key = "option_type" if "option_type" in item else "type"
    option_type = item.get(type_key)
    if option_type is None:
        raise _fail(f"{where}.option_type", f"is required (one of {', '.join(OPTION_TYPES)})")
    if option_type not in OPTION_TYPES:
        raise _fail(
            f"{where}.{type_key}", f"{option_type!r} is not one of {', '.join(OPTION_TYPES)}"
        )
    default = item.get("default")
    if default is not None and not default_fits(default, option_type):
        raise _fail(f"{where}.default", f"{default!r} is not a valid {option_type}")
    description = item.get("description")
    for key in ("additional_attributes", "ui"):
        _mapping(item, key, f"{where}.{key}")
    return OptionSpec(
        name=name,
        option_type=option_type,
        default=default,
        required=_bool(item.get("required"), f"{where}.required"),
        description="" if description is None else str(description),
        local_only=_bool(item.get("local_only"), f"{where}.local_only"),
        additional_attributes=item.get("additional_attributes"),
        ui=item.get("ui"),
    )


def default_fits(value: Any, option_type: str) -> bool:
    """Whether a default can be passed as ``option_type`` on the command line.

    Strings accept any scalar because YAML types unquoted values by accident
    (``default: 30`` for a string option is common); the others accept their type
    or a string that parses as it, as they would from the command line.
    """
    if option_type == "string":
        return isinstance(value, str | int | float | bool)
    if option_type == "bool":
        return isinstance(value, bool) or (
            isinstance(value, str) and value.lower() in ("true", "false")
        )
    if isinstance(value, bool):
        return False
    if isinstance(value, int) or (option_type == "float" and isinstance(value, float)):
        return True
    if isinstance(value, str):
        try:
            int(value) if option_type == "int" else float(value)
        except ValueError:
            return False
        return True
    return False


def _multi_file(content: dict[str, Any]) -> MultiFile:
    key = "multi-file" if "multi-file" in content else "multi_file"
    where = f"configuration.content.{key}"
    config = _mapping(content, key, where)
    given = {
        "input_path": _mapping(config, "input", f"{where}.input").get("path"),
        **{
            name: _mapping(config, "output", f"{where}.output").get(name)
            for name in ("solutions", "metrics", "statistics", "assets")
        },
    }
    paths = {
        name: relative_path(
            value, f"{where}.{'input.path' if name == 'input_path' else 'output.' + name}"
        )
        for name, value in given.items()
        if value not in (None, "")
    }
    return MultiFile(**paths)
