"""A hostile model for one escape: the harness the isolation tests share.

The model's ``attempt()`` is the test's ``body``; it gets its target as JSON on
stdin and reports as JSON on stdout whether it escaped (and what it got) or the
errno that stopped it.
"""

from __future__ import annotations

import errno
import json
import textwrap
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import create_app, push_dir, run_and_wait, write_app

BLOCKED = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ESRCH, errno.ENETUNREACH}
"""How a blocked attempt ends: absent from the view, denied, read-only, unreachable."""

HARNESS = """\
import json, os, signal, socket, sys, urllib.request
target = json.load(sys.stdin)

def attempt():
{body}

try:
    got = attempt()
except OSError as exc:
    print(json.dumps({{"escaped": False, "errno": exc.errno, "error": str(exc)}}))
else:
    print(json.dumps({{"escaped": True, "got": repr(got)[:300]}}))
"""


def hostile(api: httpx.Client, tmp: Path, body: str, target: dict[str, Any]) -> dict[str, Any]:
    """Push a model whose ``attempt()`` is ``body``, run it on ``target``, return its report."""
    app_id = create_app(api)
    source = HARNESS.format(body=textwrap.indent(textwrap.dedent(body).strip(), "    "))
    push_dir(api, app_id, write_app(tmp / app_id, source), tmp)
    res = run_and_wait(api, app_id, {"input": target})
    meta = res["metadata"]
    assert meta["status_v2"] == "succeeded", meta["error"]
    report = res["output"]
    assert isinstance(report, dict), report
    report["run_id"] = res["id"]
    return report


def assert_blocked(report: dict[str, Any], secret: str | None = None) -> None:
    assert report["escaped"] is False, report
    assert report["errno"] in BLOCKED, report
    if secret is not None:
        assert secret not in json.dumps(report)
