"""Refusals on the CLI: what they ask for, what they leave, how they name things.

- ``orch app version|instance|secrets delete`` ask for ``--confirm``, as every other
  delete does (same message shape, exit code 1, stderr), and their ``-h`` says so.
- ``orch app instance update --unlock`` with a change the daemon refuses leaves the
  instance locked: the unlock and the change are one write.
- A limit the daemon refuses is named on the CLI by the flag typed (``--memory-mb``),
  not by the API's field (``memory_mb``).
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.cli_run import new_app, orch, orch_json
from tests.helpers import SAMPLES, Daemon

KNAPSACK = SAMPLES / "knapsack"
KNAPSACK_INPUT = KNAPSACK / "input.json"


def _app_with_instance(daemon: Daemon) -> str:
    app_id = new_app(daemon, KNAPSACK)
    orch(daemon, f"app version create -a {app_id} -v v1")
    orch(daemon, f"app instance create -a {app_id} --instance-id prod -v v1")
    return app_id


# 1. every delete asks for --confirm


def test_version_instance_and_secrets_deletes_ask_for_confirm(
    daemon: Daemon, tmp_path: Path
) -> None:
    app_id = _app_with_instance(daemon)
    orch(daemon, f"app version create -a {app_id} -v v2")
    token = tmp_path / "token"
    token.write_text("secret")
    orch(daemon, f"app secrets create -a {app_id} --id sc --env", f"TOKEN={token}")
    deletes = {
        "version": (f"-v v2 -a {app_id}", f"version v2 of app {app_id}"),
        "instance": (f"--instance-id prod -a {app_id}", f"instance prod of app {app_id}"),
        "secrets": (f"--id sc -a {app_id}", f"secrets collection sc of app {app_id}"),
    }
    for group, (flags, what) in deletes.items():
        refused = orch(daemon, f"app {group} delete {flags}", code=1)
        assert refused.stderr == f"error: add --confirm to delete {what}\n", refused.stderr
        assert refused.stdout == ""
        shown = " ".join(orch(daemon, f"app {group} delete -h").stdout.split())
        assert "--confirm" in shown and "(needs --confirm" in shown, shown
    # nothing was deleted
    assert [v["id"] for v in orch_json(daemon, f"app version list -a {app_id}")] == ["v1", "v2"]
    orch(daemon, f"app instance get -a {app_id} --instance-id prod")
    orch(daemon, f"app secrets get -a {app_id} --id sc")
    # the same shape as the deletes that asked already
    input_set = orch(daemon, f"experiment input-set delete -a {app_id} -s nope", code=1)
    assert input_set.stderr.startswith("error: add --confirm to delete ")

    for group, (flags, what) in deletes.items():
        done = orch(daemon, f"app {group} delete {flags} --confirm")
        assert f"deleted {what}" in done.stderr
    orch(daemon, f"app version get -a {app_id} -v v2", code=1)
    orch(daemon, f"app instance get -a {app_id} --instance-id prod", code=1)
    orch(daemon, f"app secrets get -a {app_id} --id sc", code=1)


def test_a_missing_instance_id_is_still_the_usage_error(daemon: Daemon) -> None:
    """--confirm is asked once the command line is complete, not instead of what it lacks."""
    missing = orch(daemon, "app instance delete -a some-app", code=2)
    assert "--instance-id" in missing.stderr and "--confirm" not in missing.stderr


# 2. --unlock with a change that is refused


def test_unlock_with_a_refused_change_leaves_the_instance_locked(daemon: Daemon) -> None:
    app_id = _app_with_instance(daemon)
    inst = f"-a {app_id} --instance-id prod"
    assert orch_json(daemon, f"app instance update {inst} --lock")["locked"] is True
    for change, says in (
        ("-v NOPE", "version 'NOPE' not found"),
        ("-o scale=abc", "scale"),
        ("--secrets-collection-id nope -n Renamed", "nope"),
    ):
        refused = orch(daemon, f"app instance update {inst} --unlock {change}", code=1)
        assert says in refused.stderr, refused.stderr
        kept = orch_json(daemon, f"app instance get {inst}")
        assert kept["locked"] is True, change
        assert (kept["version_id"], kept["name"]) == ("v1", "prod"), change
        assert kept["configuration"].get("options", {}) == {}, change

    changed = orch_json(daemon, f"app instance update {inst} --unlock -o scale=2")
    assert changed["locked"] is False and changed["configuration"]["options"] == {"scale": "2"}
    # --lock with a refused change: neither the change nor the lock
    orch(daemon, f"app instance update {inst} --lock -v NOPE", code=1)
    assert orch_json(daemon, f"app instance get {inst}")["locked"] is False


# 3. limit errors name the flag


def test_a_refused_limit_names_the_flag_typed(daemon: Daemon) -> None:
    app_id = _app_with_instance(daemon)
    caps = "--memory-mb 256 --timeout 10 --cpu-seconds 5"
    orch(daemon, f"app instance update -a {app_id} --instance-id prod {caps}")
    asked = "--memory-mb 999999 --timeout 100 --cpu-seconds 50"
    refused = orch(
        daemon, f"app run -a {app_id} --instance-id prod {asked} -i", KNAPSACK_INPUT, code=1
    )
    message = refused.stderr
    for flag, value in (("--memory-mb", "999999"), ("--timeout", "100"), ("--cpu-seconds", "50")):
        assert f"{flag}={value}" in message, message
    assert not re.search(r"memory_mb|timeout_seconds|cpu_seconds|limits\.", message), message
    assert "exceeds the instance cap 256" in message
