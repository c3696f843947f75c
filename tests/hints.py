"""The next step a message names (``start it with: orch ...``), run as pasted into a shell."""

from __future__ import annotations

import re
import shlex
import subprocess

from tests.cli_run import CLI, ENV


def hint(stderr: str, label: str) -> str:
    """The command line after ``label:`` in ``stderr`` (up to the end of its line)."""
    found = re.search(rf"{re.escape(label)}: (orch .*)$", stderr, re.MULTILINE)
    assert found, f"no '{label}: orch ...' in {stderr!r}"
    return found[1]


def paste(line: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    """``line`` as a shell runs it, ``orch`` being this checkout's; nothing added to it (no
    ``--home``: the line must carry the one the first command was given)."""
    words = shlex.split(line)
    assert words[0] == "orch", line
    argv = [*CLI, *words[1:]]
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=ENV, timeout=90, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == code, f"{line} exited {proc.returncode}\n{proc.stderr}"
    return proc
