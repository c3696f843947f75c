"""The README's table of SDK methods stays true to the installed SDK and to the tests.

Every public method of ``nextmv.cloud.Application``, ``Client`` and ``Account`` and every
function of ``nextmv.cloud`` has a row (a class out of scope may have one ``Class.*``
row); every row names something the SDK has; and a row that says *works* names a method
that ``tests/compat/`` calls.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import nextmv.cloud as cloud
import pytest
from nextmv.base_model import BaseModel

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- sdk-methods:start -->", "<!-- sdk-methods:end -->"
ROW = re.compile(r"^\| (?P<group>[^|]+) \| `(?P<name>[^`]+)` \| (?P<status>[^|]+) \|")
STATUS = re.compile(r"^(works|no|out of scope|in progress \(`[a-z]+`\))$")
COVERED = ("Application", "Client", "Account")
"""Classes whose every method needs a row of its own."""


def table() -> dict[str, tuple[str, str]]:
    """``{name: (group, status)}`` from the README."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index(START) + len(START) : text.index(END)]
    rows = {}
    for line in block.strip().splitlines()[2:]:
        match = ROW.match(line)
        assert match, f"not a row of the table: {line!r}"
        assert match["name"] not in rows, f"{match['name']} appears twice"
        rows[match["name"]] = (match["group"].strip(), match["status"].strip())
    return rows


def methods(cls: type) -> set[str]:
    """Public methods the SDK adds (pydantic's and the SDK's model plumbing left out)."""
    return {
        name
        for name in dir(cls)
        if not name.startswith("_")
        and callable(getattr(cls, name))
        and not hasattr(BaseModel, name)
    }


def sdk_names() -> set[str]:
    names = {f"{cls}.{m}" for cls in COVERED for m in methods(getattr(cloud, cls))}
    functions = {n for n in dir(cloud) if not n.startswith("_") and callable(getattr(cloud, n))}
    return names | {f"cloud.{n}" for n in functions if not isinstance(getattr(cloud, n), type)}


@functools.cache
def called_in_compat() -> frozenset[str]:
    """Every ``x.name(...)`` and ``name(...)`` called in ``tests/compat/``: parsed once a
    run, not once for each of the ~100 rows that ask (0.1 s each)."""
    called: set[str] = set()
    for path in (ROOT / "tests" / "compat").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Attribute):
                    called.add(func.attr)
                elif isinstance(func, ast.Name):
                    called.add(func.id)
    return frozenset(called)


def test_every_sdk_method_has_a_row() -> None:
    rows = table()
    wildcards = {name.removesuffix(".*") for name in rows if name.endswith(".*")}
    missing = {n for n in sdk_names() if n not in rows and n.split(".")[0] not in wildcards}
    assert not missing, f"add these to the README's table of SDK methods: {sorted(missing)}"


def test_every_row_names_something_in_the_sdk() -> None:
    for name, (_, status) in table().items():
        owner, _, member = name.partition(".")
        if owner == "cloud":
            assert callable(getattr(cloud, member, None)), f"no function nextmv.cloud.{member}"
            continue
        cls = getattr(cloud, owner, None)
        assert isinstance(cls, type), f"no class nextmv.cloud.{owner}"
        if member == "*":
            assert owner not in COVERED and status == "out of scope", name
        else:
            assert member in methods(cls), f"{name} is not a public method of the SDK"


@pytest.mark.parametrize("name", [n for n, (_, s) in table().items() if s == "works"])
def test_what_works_is_called_in_the_compat_tests(name: str) -> None:
    assert name.rpartition(".")[2] in called_in_compat(), f"no test in tests/compat calls {name}"


def test_statuses_are_from_the_legend() -> None:
    for name, (group, status) in table().items():
        assert STATUS.match(status), f"{name}: unknown status {status!r}"
        assert group, name
