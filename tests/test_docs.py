"""Docs that cannot drift: the README's CLI reference is the CLI's own --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_cli_reference_matches_help() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    import cli_reference

    readme = (ROOT / "README.md").read_text()
    assert cli_reference.embedded(readme) == cli_reference.reference(), (
        "README's CLI reference is stale: run .venv/bin/python scripts/cli_reference.py --write"
    )


def test_readme_names_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "scripts/demo" in readme and "scripts/test" in readme
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_every_command_has_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0 and "daemon" in done.stdout and "experiment" in done.stdout
