"""``orch app secrets ...`` and ``--secrets-collection-id`` on instances and runs, as a
subprocess against the session daemon. Values go in through files and stdin, and never
come out of any command."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.cli_run import new_app, orch, orch_json
from tests.helpers import Daemon, unique, write_app

PROBE = """\
import hashlib, json, os
def digest(data):
    return None if data is None else hashlib.sha256(data).hexdigest()
token = os.environ.get("TOKEN")
licence = open("licence/key.lic", "rb").read() if os.path.exists("licence/key.lic") else None
json.dump({"env": digest(token.encode() if token else None), "file": digest(licence)},
          __import__("sys").stdout)
"""


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def values(tmp_path: Path) -> tuple[Path, str, str]:
    token, licence = unique("cli-token"), unique("cli-licence") + "\nline two\n"
    (tmp_path / "token").write_text(token + "\n")
    return tmp_path / "token", token, licence


def test_create_get_list_update_delete(daemon: Daemon, values: tuple[Path, str, str]) -> None:
    token_file, token, licence = values
    app_id = new_app(daemon)
    cid = unique("sc")
    made = orch_json(
        daemon,
        f"app secrets create -a {app_id} --secrets-collection-id {cid} -n Keys",
        "--env",
        f"TOKEN={token_file}",
        "--file",
        "licence/key.lic=-",
        stdin=licence,
    )
    assert (made["id"], made["name"], made["application_id"]) == (cid, "Keys", app_id)
    got = orch_json(daemon, f"app secrets get -a {app_id} --id {cid}")
    assert [(s["type"], s["location"]) for s in got["secrets"]] == [
        ("env", "TOKEN"),
        ("file", "licence/key.lic"),
    ]
    shown = orch(daemon, f"app secrets get -a {app_id} --id {cid}").stdout
    assert "env:TOKEN, file:licence/key.lic" in shown
    assert cid in orch(daemon, f"app secrets list -a {app_id}").stdout

    orch(daemon, f"app secrets update -a {app_id} --id {cid} --env", f"EXTRA={token_file}")
    orch(daemon, f"app secrets update -a {app_id} --id {cid} --remove env:TOKEN -d changed")
    got = orch_json(daemon, f"app secrets get -a {app_id} --id {cid}")
    assert [(s["type"], s["location"]) for s in got["secrets"]] == [
        ("env", "EXTRA"),
        ("file", "licence/key.lic"),
    ]
    assert got["description"] == "changed"
    orch(daemon, f"app secrets update -a {app_id} --id {cid} --replace --env", f"ONLY={token_file}")
    got = orch_json(daemon, f"app secrets get -a {app_id} --id {cid}")
    assert [(s["type"], s["location"]) for s in got["secrets"]] == [("env", "ONLY")]
    assert token not in json.dumps(got)

    done = orch(daemon, f"app secrets delete -a {app_id} --id {cid} --confirm")
    assert f"deleted secrets collection {cid}" in done.stderr
    missing = orch(daemon, f"app secrets get -a {app_id} --id {cid}", code=1)
    assert f"secrets collection '{cid}' not found" in missing.stderr


def test_instances_and_runs_name_a_collection(
    daemon: Daemon, values: tuple[Path, str, str], tmp_path: Path
) -> None:
    token_file, token, licence = values
    app_id = new_app(daemon, write_app(tmp_path / "probe", PROBE))
    cid = unique("sc")
    orch(
        daemon,
        f"app secrets create -a {app_id} --id {cid} --env",
        f"TOKEN={token_file}",
        "--file",
        "licence/key.lic=-",
        stdin=licence,
    )
    run = orch(daemon, f"app run -a {app_id} --secrets-collection-id {cid} -w", stdin="{}")
    assert json.loads(run.stdout) == {"env": _sha(token), "file": _sha(licence)}
    assert token not in run.stderr and licence not in run.stderr

    orch(daemon, f"app version create -a {app_id} -v v1")
    inst = f"app instance create -a {app_id} --instance-id prod -v v1 --secrets-collection-id {cid}"
    assert orch_json(daemon, inst)["configuration"]["secrets_collection_id"] == cid
    shown = orch(daemon, f"app instance get -a {app_id} --instance-id prod").stdout
    assert any(line.split() == ["secrets", "collection", cid] for line in shown.splitlines())
    run = orch(daemon, f"app run -a {app_id} --instance-id prod -w", stdin="{}")
    assert json.loads(run.stdout)["env"] == _sha(token)
    refused = orch(daemon, f"app secrets delete -a {app_id} --id {cid} --confirm", code=1)
    assert "used by instance(s) prod" in refused.stderr
    cleared = orch_json(
        daemon, f"app instance update -a {app_id} --instance-id prod --secrets-collection-id="
    )
    assert "secrets_collection_id" not in cleared["configuration"]
    orch(daemon, f"app secrets delete -a {app_id} --id {cid} --confirm")


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [
        ("create", "", "give at least one secret"),
        ("create --env TOKEN", "", "--env takes LOCATION=SOURCE"),
        ("create --env A=- --env B=-", "x", "only one value can come from stdin"),
        ("create --env A=/nonexistent/file", "", "value from /nonexistent/file: No such file or"),
        ("create --secrets -", "not json", "--secrets: not JSON"),
        ("update --id x", "", "nothing to update"),
        ("update --id x --remove TOKEN", "", "--remove takes TYPE:LOCATION"),
        ("get", "", "missing option '--secrets-collection-id' / '--id'"),
        ("delete", "", "missing option '--secrets-collection-id' / '--id'"),
    ],
)
def test_usage_errors_exit_2(daemon: Daemon, args: str, stdin: str, says: str) -> None:
    proc = orch(daemon, f"app secrets {args} -a some-app", stdin=stdin, code=2)
    assert says in proc.stderr


def test_the_daemons_refusal_is_printed(daemon: Daemon) -> None:
    app_id = new_app(daemon)
    secrets = json.dumps([{"type": "file", "location": "../up", "value": "v"}])
    proc = orch(daemon, f"app secrets create -a {app_id} --secrets -", stdin=secrets, code=1)
    assert "may not contain '..'" in proc.stderr


def test_help_marks_the_collection_id_required_where_it_is(daemon: Daemon) -> None:
    for command, required in (("get", True), ("delete", True), ("update", True), ("create", False)):
        shown = orch(daemon, f"app secrets {command} -h").stdout
        line = next(line for line in shown.splitlines() if "--secrets-collection-id" in line)
        assert line.lstrip("│ ").startswith("*") is required, (command, line)
