"""The ``orch app ...`` command line, run as a subprocess against a real daemon.

Each test uses its own app IDs (``unique``) so that they can share the session
daemon; assertions look at stdout (data), stderr (messages) and exit codes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli_run import new_app, orch, orch_json, spawn
from tests.helpers import SAMPLES, Daemon, unique, wait_for, write_app

KNAPSACK_INPUT = SAMPLES / "knapsack" / "input.json"
RUN_ID = re.compile(r"^run-[0-9a-z]+$")
TEXT_APP = """\
import json, sys
text = sys.stdin.read()
print(f"read {len(text)} characters", file=sys.stderr)
json.dump({"solutions": [{"upper": text.upper()}], "statistics": {"result": {"value": len(text)}}},
          sys.stdout)
"""
TEXT_MANIFEST = """\
type: python
runtime: ghcr.io/nextmv-io/runtime/python:3.11
files:
  - main.py
configuration:
  content:
    format: text
"""
FOLDER_APP = """\
import json, os
names = sorted(os.path.relpath(os.path.join(r, f), "inputs")
               for r, _, fs in os.walk("inputs") for f in fs)
os.makedirs("outputs/solutions", exist_ok=True)
with open("outputs/solutions/files.json", "w") as fh:
    json.dump({"files": names}, fh)
"""


def devint_moves(api: httpx.Client, app_id: str) -> list[dict[str, Any]]:
    items = api.get(f"/v1/applications/{app_id}/history").json()["items"]
    return [m for m in items if m["pointer"] == "devint"]


@pytest.fixture(scope="module")
def knap(daemon: Daemon) -> str:
    """An app running the knapsack sample, shared by the run tests of this module."""
    return new_app(daemon, SAMPLES / "knapsack")


# apps


def test_app_create_list_get_update_delete(daemon: Daemon) -> None:
    app_id = unique("cli")
    created = orch(daemon, f"app create -a {app_id} -n First -d about")
    assert app_id in created.stdout and "First" in created.stdout
    assert app_id in [a["id"] for a in orch_json(daemon, "app list")]
    assert app_id in orch(daemon, "app list").stdout
    got = orch_json(daemon, f"app get -a {app_id}")
    assert got["name"] == "First" and got["description"] == "about"
    assert got["default_instance"] is None and {"created_at", "updated_at", "type"} <= set(got)

    updated = orch_json(daemon, f"app update -a {app_id} -n Second")
    assert updated["name"] == "Second" and updated["description"] == "about"

    refused = orch(daemon, f"app delete -a {app_id}", code=1)
    assert "--confirm" in refused.stderr
    orch(daemon, f"app get -a {app_id}")
    assert f"deleted app {app_id}" in orch(daemon, f"app delete -a {app_id} --confirm").stderr
    gone = orch(daemon, f"app get -a {app_id}", code=1)
    assert gone.stderr.startswith("error:") and "not found" in gone.stderr


def test_bad_app_id_prints_the_rule(daemon: Daemon) -> None:
    proc = orch(daemon, "app create -a Bad_ID -n x", code=1)
    assert proc.stdout == ""
    assert proc.stderr.startswith("error:") and "lowercase letters" in proc.stderr


def test_without_a_daemon_says_how_to_start_one(daemon: Daemon, tmp_path: Path) -> None:
    proc = orch(daemon, "app list --home", tmp_path, code=1, home=False)
    assert "orch daemon start" in proc.stderr


# push, history, watch


def test_push_two_samples_then_history(daemon: Daemon, api: httpx.Client) -> None:
    app_id = new_app(daemon)
    first = orch(daemon, f"app push -a {app_id} --app-dir", SAMPLES / "knapsack")
    match = re.search(r"pushed ([0-9a-f]{12}) to app (\S+) \(devint now runs it\)", first.stderr)
    assert match and match.group(2) == app_id
    assert match.group(1) in first.stdout and "python" in first.stdout
    second = orch_json(daemon, f"app push -a {app_id} --app-dir", SAMPLES / "shell-echo")
    sha = second["executable"]["id"]
    assert second["executable"]["requirements"]["executable_type"] == "binary"

    assert [m["action"] for m in devint_moves(api, app_id)] == ["push", "push"]
    history = orch_json(daemon, f"app history -a {app_id}")
    assert history["items"][0]["to"] == sha  # newest first, the full sha256 in JSON
    table = orch(daemon, f"app history -a {app_id}").stdout
    assert sha[:12] in table and sha not in table and table.count("devint") == 2

    echo_input = SAMPLES / "shell-echo" / "input.json"
    out = orch(daemon, f"app run -a {app_id} -o greeting=hey --wait -i", echo_input)
    assert json.loads(out.stdout)["solutions"][0]["greeting"] == "hey"


def test_push_watch_pushes_again_on_change(
    daemon: Daemon, api: httpx.Client, tmp_path: Path
) -> None:
    app_dir = tmp_path / "knapsack"
    shutil.copytree(SAMPLES / "knapsack", app_dir)
    app_id = new_app(daemon)
    proc = spawn(daemon, f"app push -a {app_id} --watch --max-pushes 2 --app-dir", app_dir)
    main = app_dir / "main.py"
    source = main.read_text()
    deadline = time.monotonic() + 30
    edits = 0
    # Keep saving (a different content each time) until the watcher has pushed twice: an
    # edit made before the watcher starts is simply followed by the next one.
    while proc.poll() is None and time.monotonic() < deadline:
        if devint_moves(api, app_id):
            edits += 1
            main.write_text(f"{source}\n# edit {edits}\n")
        time.sleep(0.3)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert len(devint_moves(api, app_id)) == 2
    assert err.count("pushed ") == 2 and "watching" in err


# versions, instances, promote


def test_versions_instances_and_promote(daemon: Daemon) -> None:
    a = new_app(daemon, SAMPLES / "knapsack")
    version = orch_json(daemon, f"app version create -a {a} -v v1 -n First -d one")
    assert version["id"] == "v1" and len(version["executable"]["id"]) == 64
    assert "v1" in orch(daemon, f"app version list -a {a}").stdout
    assert orch_json(daemon, f"app version get -a {a} -v v1")["name"] == "First"
    assert orch_json(daemon, f"app version update -a {a} -v v1 -d new")["description"] == "new"

    flags = "-o duration=3 -o scale=2 --memory-mb 512 --timeout 30"
    inst = orch_json(daemon, f"app instance create -a {a} --instance-id prod -v v1 {flags}")
    assert inst["configuration"]["options"] == {"duration": "3", "scale": "2"}
    assert inst["configuration"]["limits"] == {"memory_mb": 512, "timeout_seconds": 30}
    assert "prod" in orch(daemon, f"app version delete -a {a} -v v1 --confirm", code=1).stderr

    changed = orch_json(
        daemon, f"app instance update -a {a} --instance-id prod --cpu-seconds 20 -o sleep=0"
    )
    assert changed["configuration"]["options"] == {"sleep": "0"}  # -o replaces the options
    limits = {"memory_mb": 512, "cpu_seconds": 20, "timeout_seconds": 30}  # limits merge
    assert changed["configuration"]["limits"] == limits
    assert orch_json(daemon, f"app instance get -a {a} --instance-id prod")["version_id"] == "v1"
    listing = orch(daemon, f"app instance list -a {a}").stdout
    assert "devint" in listing and "memory_mb=512" in listing

    default = orch_json(daemon, f"app update -a {a} --default-instance-id prod")
    assert default["default_instance"] == "prod"
    promoted = orch(daemon, f"app promote -a {a} -v v2 -n Second")
    assert "v2" in promoted.stdout and "prod" in promoted.stdout
    result = orch_json(daemon, f"app run -a {a} --instance default --wait -i", KNAPSACK_INPUT)
    meta = result["metadata"]
    assert meta["application_instance_id"] == "prod" and meta["application_version_id"] == "v2"

    orch(daemon, f"app instance delete -a {a} --instance-id prod --confirm", code=1)
    orch(daemon, f"app instance delete -a {a} --instance-id prod --force --confirm")
    assert orch_json(daemon, f"app get -a {a}")["default_instance"] is None
    orch(daemon, f"app version delete -a {a} -v v1 --confirm")
    assert [v["id"] for v in orch_json(daemon, f"app version list -a {a}")] == ["v2"]


# runs


def test_run_wait_prints_the_output(daemon: Daemon, knap: str) -> None:
    proc = orch(daemon, f"app run -a {knap} --wait -i", KNAPSACK_INPUT)
    assert json.loads(proc.stdout)["statistics"]["result"]["value"] == 444
    assert re.search(r"run run-\S+ succeeded in [\d.]+ s, peak memory", proc.stderr)

    result = orch_json(daemon, f"app run -a {knap} --wait -i", KNAPSACK_INPUT)
    assert result["metadata"]["status_v2"] == "succeeded"
    assert result["metadata"]["application_instance_id"] == "devint"
    assert result["output"]["statistics"]["result"]["value"] == 444


def test_run_id_then_result_metadata_logs_input_list(daemon: Daemon, knap: str) -> None:
    run_id = orch(daemon, f"app run -a {knap} -o duration=2 -n named -i", KNAPSACK_INPUT).stdout
    run_id = run_id.strip()
    assert RUN_ID.match(run_id)
    output = orch(daemon, f"app run result -a {knap} -r {run_id} --wait").stdout
    assert json.loads(output)["options"]["duration"] == 2.0

    meta = orch(daemon, f"app run metadata -a {knap} -r {run_id}").stdout
    assert "succeeded" in meta and "duration=2.0 (run)" in meta and "scale=1 (manifest)" in meta
    info = orch_json(daemon, f"app run metadata -a {knap} -r {run_id}")
    assert info["name"] == "named" and info["metadata"]["metrics"]["result.value"] == 444

    assert "solving knapsack" in orch(daemon, f"app run logs -a {knap} -r {run_id}").stdout
    sent = orch(daemon, f"app run input -a {knap} -r {run_id}").stdout
    assert json.loads(sent) == json.loads(KNAPSACK_INPUT.read_text())

    listed = orch_json(daemon, f"app run list -a {knap} --status succeeded --instance devint")
    assert run_id in [r["id"] for r in listed["runs"]]
    assert run_id in orch(daemon, f"app run list -a {knap}").stdout
    assert "--page-token" in orch(daemon, f"app run list -a {knap} --limit 1").stderr


def test_run_reads_stdin(daemon: Daemon, knap: str) -> None:
    text = KNAPSACK_INPUT.read_text()
    piped = orch(daemon, f"app run -a {knap} --wait", stdin=text)
    assert json.loads(piped.stdout)["statistics"]["result"]["value"] == 444
    dashed = orch(daemon, f"app run -a {knap} -i - --wait", stdin=text)
    assert json.loads(dashed.stdout)["statistics"]["result"]["value"] == 444


def test_text_input_goes_through_an_upload(daemon: Daemon, tmp_path: Path) -> None:
    app_id = new_app(daemon, write_app(tmp_path / "text", TEXT_APP, TEXT_MANIFEST))
    (tmp_path / "in.txt").write_text("hello world\n")
    result = orch_json(daemon, f"app run -a {app_id} --wait -i", tmp_path / "in.txt")
    assert result["output"]["solutions"][0]["upper"] == "HELLO WORLD\n"
    assert result["metadata"]["format"]["input"]["type"] == "text"
    back = orch(daemon, f"app run input -a {app_id} -r {result['id']}").stdout
    assert back == "hello world\n"


def test_a_text_output_is_printed_as_the_model_wrote_it(daemon: Daemon, tmp_path: Path) -> None:
    """The API calls a text app's text output ``text`` and serves its URL as a tar.gz (what
    the SDK reads); the CLI still prints and writes the bytes themselves."""
    main = "import sys\nprint('upper:', sys.stdin.read().upper())\n"
    app_id = new_app(daemon, write_app(tmp_path / "shout", main, TEXT_MANIFEST))
    (tmp_path / "in.txt").write_text("hello world")
    piped = orch(daemon, f"app run -a {app_id} --wait -i", tmp_path / "in.txt")
    assert piped.stdout == "upper: HELLO WORLD\n"
    out = tmp_path / "out.txt"
    run_id = orch(daemon, f"app run -a {app_id} -i", tmp_path / "in.txt").stdout.strip()
    orch(daemon, f"app run result -a {app_id} -r {run_id} -w --output", out)
    assert out.read_text() == "upper: HELLO WORLD\n"
    info = orch_json(daemon, f"app run result -a {app_id} -r {run_id}")
    assert info["metadata"]["format"]["output"]["type"] == "text"


def test_folder_input_is_sent_as_multi_file(daemon: Daemon, tmp_path: Path) -> None:
    manifest = TEXT_MANIFEST.replace("format: text", "format: multi-file")
    app_id = new_app(daemon, write_app(tmp_path / "app", FOLDER_APP, manifest))
    folder = tmp_path / "inputs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.csv").write_text("a\n")
    (folder / "sub" / "b.csv").write_text("b\n")
    archive = tmp_path / "out.tar.gz"
    orch(daemon, f"app run -a {app_id} --wait -i", folder, "--output", archive)
    with tarfile.open(archive) as tar:
        member = tar.extractfile("solutions/files.json")
        assert member is not None
        assert json.load(member) == {"files": ["a.csv", "sub/b.csv"]}


def test_failing_run_exits_1_with_the_error(daemon: Daemon, knap: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"no": "items"}')
    proc = orch(daemon, f"app run -a {knap} --wait --logs -i", bad, code=1)
    assert proc.stdout == ""
    assert "failed" in proc.stderr and "KeyError" in proc.stderr


@pytest.fixture
def sleeper(daemon: Daemon, knap: str) -> Iterator[subprocess.Popen[str]]:
    """``orch app run --wait`` of a 30 s run, to be canceled by the test."""
    proc = spawn(daemon, f"app run -a {knap} -o sleep=30 --wait -i", KNAPSACK_INPUT)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_cancel_follow_and_delete(
    daemon: Daemon, api: httpx.Client, knap: str, sleeper: subprocess.Popen[str]
) -> None:
    def running_run() -> str:
        runs = api.get(f"/v1/applications/{knap}/runs", params={"status": "running"}).json()
        return str(runs["runs"][0]["id"]) if runs["runs"] else ""

    run_id = wait_for(running_run, timeout=20)
    follow = spawn(daemon, f"app run logs -a {knap} -r {run_id} --follow")
    assert "canceled" in orch(daemon, f"app run cancel -a {knap} -r {run_id}").stderr

    followed, _ = follow.communicate(timeout=20)
    assert follow.returncode == 2 and "solving knapsack" in followed  # canceled
    _, waited = sleeper.communicate(timeout=20)
    assert sleeper.returncode == 2 and "canceled" in waited
    orch(daemon, f"app run result -a {knap} -r {run_id}", code=2)

    orch(daemon, f"app run delete -a {knap} -r {run_id}", code=1)
    orch(daemon, f"app run delete -a {knap} -r {run_id} --confirm")
    gone = orch(daemon, f"app run metadata -a {knap} -r {run_id}", code=1)
    assert "not found" in gone.stderr


def test_everyday_commands_import_nothing_heavy() -> None:
    """``orch app list`` and ``orch app run`` load only their own modules: no event loop,
    no server stack, no experiments engine, not even the daemon's settings and domain
    models (each costs milliseconds to tens of ms on every command)."""
    probe = (
        "import sys, orchestrator.cli.main, orchestrator.cli.app, orchestrator.cli.run,"
        " orchestrator.cli.run_actions, orchestrator.cli.run_wait;"
        " print(' '.join(m for m in sys.modules if m.split('.')[0] in"
        " ('asyncio', 'anyio', 'httpx', 'rich', 'fastapi', 'pydantic', 'starlette')"
        " or m.startswith('orchestrator.experiments')"
        " or m in ('orchestrator.models', 'orchestrator.config', 'orchestrator.lifecycle')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


def test_tables_and_records_in_a_pipe_end_their_lines_with_their_text(daemon: Daemon) -> None:
    """rich padded every line to the table's width: a record's short lines ended in ~150
    spaces in a pipe, where scripts and diffs read them."""
    app_id = new_app(daemon, SAMPLES / "knapsack")
    for command in ("daemon status", "app list", f"app get -a {app_id}"):
        shown = orch(daemon, command).stdout
        assert shown.strip(), command
        assert all(line == line.rstrip() for line in shown.splitlines()), command


def test_retries_is_a_limit_flag_like_the_others(daemon: Daemon) -> None:
    """The key setting of a Dask cluster's lost workers had no flag: only the API set it."""
    app_id = new_app(daemon, SAMPLES / "knapsack")
    orch(daemon, f"app version create -a {app_id} -v v1")
    orch(daemon, f"app instance create -a {app_id} --instance-id tries -v v1 --retries 2")
    made = orch_json(daemon, f"app instance get -a {app_id} --instance-id tries")
    assert made["configuration"]["limits"]["retries"] == 2
    orch(daemon, f"app instance update -a {app_id} --instance-id tries --retries 1")
    updated = orch_json(daemon, f"app instance get -a {app_id} --instance-id tries")
    assert updated["configuration"]["limits"]["retries"] == 1
    too_many = orch(
        daemon, f"app run -a {app_id} --retries 4 -i", SAMPLES / "knapsack" / "input.json", code=2
    )
    assert "--retries" in too_many.stderr and "0<=x<=3" in too_many.stderr
