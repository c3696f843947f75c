"""An ensemble definition from the command line: a JSON file and/or flags, as the SDK's JSON.

The file is what ``orch ensemble get --json`` prints (or the SDK's ``to_dict()``); the
flags add to it: ``--run-groups``/``--rules`` take the nextmv CLI's JSON (an object or
an array, repeatable), and the short forms cover the common case, one run group per
instance (``--instance-ids``) and one rule (``--statistics-path`` + ``--objective``).
Only the shape is checked here; the daemon checks the rest (instances, objectives,
tolerances) and says what is wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from orchestrator.cli.flags import bad_value, parse_options
from orchestrator.cli.output import fail

_NOT_ID = re.compile(r"[^A-Za-z0-9._-]+")
OBJECTIVES = (("min", "minimize"), ("max", "maximize"))
"""Each objective's two spellings: batch experiments send the short one, ensembles the long."""


def objective_option(long: bool, help: str) -> Any:
    """``--objective`` of ``experiment batch start`` (min, max) and ``ensemble create``
    (minimize, maximize): each shows and sends its own API's words, and takes the other
    command's too, since a user of both types whichever comes to mind."""
    words = [pair[long] for pair in OBJECTIVES]
    own = {word: pair[long] for pair in OBJECTIVES for word in pair}

    def check(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
        if value is None:
            return None
        if value not in own:
            raise bad_value(param, f"{value!r} is not one of {', '.join(map(repr, words))}")
        return own[value]

    return typer.Option(
        None, "--objective", metavar=f"<{'|'.join(words)}>", callback=check, help=help
    )


@dataclass
class GroupFlags:
    """``--instance-ids a,b --repetitions 2 -o k=v``: one run group per instance."""

    instance_ids: list[str] = field(default_factory=list)
    repetitions: int | None = None
    options: list[str] | None = None


@dataclass
class RuleFlags:
    """``--statistics-path $.result.value --objective maximize --tolerance 0``: one rule."""

    statistics_path: str | None = None
    objective: str | None = None
    tolerance: float = 0.0
    tolerance_type: str = "absolute"


def read_file(path: Path | None) -> dict[str, Any]:
    """The definition in ``path`` (a JSON object), without the fields the daemon sets."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        fail(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})")
    except ValueError as exc:
        fail(f"{path} is not valid JSON: {exc}")
    if not isinstance(data, dict):
        fail(f"{path} must hold a JSON object with run_groups and rules")
    for key in ("application_id", "created_at", "updated_at"):
        data.pop(key, None)
    for key in ("run_groups", "rules"):
        items = data.get(key, [])
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            fail(f"{path}: {key} must be an array of objects")
    return data


def json_items(values: list[str] | None, flag: str) -> list[dict[str, Any]]:
    """``--run-groups``/``--rules``: each value a JSON object or an array of objects."""
    items: list[dict[str, Any]] = []
    for text in values or []:
        try:
            data = json.loads(text)
        except ValueError as exc:
            fail(f"{flag} {text!r} is not valid JSON: {exc}", code=2)
        found = data if isinstance(data, list) else [data]
        if not all(isinstance(item, dict) for item in found):
            fail(f"{flag} takes a JSON object or an array of objects, got {text!r}", code=2)
        items += found
    return items


def groups_of(flags: GroupFlags) -> list[dict[str, Any]]:
    if not flags.instance_ids:
        if flags.repetitions is not None or flags.options:
            fail("--repetitions and --options apply to --instance-ids; give it too", code=2)
        return []
    options = parse_options(flags.options)
    return [
        {"id": i, "instance_id": i, "options": options, "repetitions": flags.repetitions or 1}
        for i in flags.instance_ids
    ]


def rule_of(flags: RuleFlags, index: int) -> list[dict[str, Any]]:
    """The rule the short flags describe (none without them), evaluated after ``index`` others."""
    if flags.statistics_path is None and flags.objective is None:
        return []
    if flags.statistics_path is None or flags.objective is None:
        fail("a rule needs both --statistics-path and --objective", code=2)
    name = _NOT_ID.sub("_", flags.statistics_path.removeprefix("$.")).strip("._-")[:64]
    return [
        {
            "id": name or f"rule-{index}",
            "statistics_path": flags.statistics_path,
            "objective": flags.objective,
            "tolerance": {"value": flags.tolerance, "type": flags.tolerance_type},
            "index": index,
        }
    ]


def definition_body(
    file: Path | None,
    group_json: list[str] | None,
    rule_json: list[str] | None,
    groups: GroupFlags,
    rule: RuleFlags,
) -> dict[str, Any]:
    """The file's definition with the flags' run groups and rules added to it."""
    body = read_file(file)
    body["run_groups"] = [
        *body.get("run_groups", []),
        *json_items(group_json, "--run-groups"),
        *groups_of(groups),
    ]
    rules = [*body.get("rules", []), *json_items(rule_json, "--rules")]
    body["rules"] = rules + rule_of(rule, len(rules))
    if not body["run_groups"]:
        fail("no run groups: give --instance-ids, --run-groups or a --file that has them", code=2)
    if not body["rules"]:
        fail("no rules: give --statistics-path and --objective, --rules, or a --file", code=2)
    return body
