"""``orch app run``'s arguments are checked before a run exists: a file for an app that
reads a folder, an empty ``-u``, and options typed before an action (``orch app run -a
APP result``), which are the action's when it has them and refused when they create a run.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from orchestrator.cli.main import cli
from orchestrator.client.transport import Transport
from tests.cli_run import new_app, orch, orch_json
from tests.helpers import MULTI_FILE_MANIFEST, SAMPLES, Daemon, write_app

KNAPSACK_INPUT = SAMPLES / "knapsack" / "input.json"


@pytest.fixture(scope="module")
def folder_apps(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A multi-file app and a csv-archive app: format → app ID."""
    apps = {}
    for fmt in ("multi-file", "csv-archive"):
        manifest = MULTI_FILE_MANIFEST.replace("format: multi-file", f"format: {fmt}")
        folder = write_app(tmp_path_factory.mktemp(fmt) / "app", "print('ok')", manifest)
        apps[fmt] = new_app(daemon, folder)
    return apps


@pytest.fixture(scope="module")
def knap(daemon: Daemon) -> str:
    return new_app(daemon, SAMPLES / "knapsack")


@pytest.fixture(scope="module")
def knap_run(daemon: Daemon, knap: str) -> str:
    """A finished knapsack run, for the actions to read."""
    run_id: str = orch_json(daemon, f"app run -a {knap} -w -i", KNAPSACK_INPUT)["id"]
    return run_id


def runs_of(api: httpx.Client, app_id: str) -> int:
    return len(api.get(f"/v1/applications/{app_id}/runs").json()["runs"])


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The usage error's one line (exit code 2, nothing on stdout), without the help hint."""
    assert proc.returncode == 2 and proc.stdout == "", proc
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0].split("; see ")[0]


# a file for an app that reads a folder


CONTENT = {"text": "a,b\n1,2\n", "json": '{"a": 1}\n'}


@pytest.mark.parametrize(
    ("fmt", "kind", "piped"),
    [
        ("multi-file", "text", False),
        ("multi-file", "json", False),
        ("multi-file", "text", True),
        ("multi-file", "json", True),
        ("csv-archive", "text", False),
    ],
)
def test_a_file_for_a_folder_app_is_refused_before_a_run_exists(
    daemon: Daemon,
    api: httpx.Client,
    folder_apps: dict[str, str],
    tmp_path: Path,
    fmt: str,
    kind: str,
    piped: bool,
) -> None:
    """Text went as a text run, whose model found no inputs/ folder and crashed; JSON was
    refused in the API's words (``upload as a tar.gz (POST .../runs/uploadurl)``)."""
    app_id = folder_apps[fmt]
    before = runs_of(api, app_id)
    if piped:
        proc = orch(daemon, f"app run -a {app_id} -w", stdin=CONTENT[kind], code=None)
    else:
        path = tmp_path / ("in.json" if kind == "json" else "one.csv")
        path.write_text(CONTENT[kind])
        proc = orch(daemon, f"app run -a {app_id} -w -i", path, code=None)
    assert one_line(proc) == (
        f"error: app {app_id} (instance devint) takes {fmt} input: give a folder (-i FOLDER)"
    )
    assert runs_of(api, app_id) == before, "a refused input created a run"


def test_a_folder_format_said_for_a_file_is_refused(
    daemon: Daemon, api: httpx.Client, folder_apps: dict[str, str], tmp_path: Path
) -> None:
    """``--format multi-file`` with a file was sent to the daemon, which said the input
    "is not a tar.gz or tar archive"; it is refused as the folder for ``--format json``
    is, before any request."""
    app_id = folder_apps["multi-file"]
    before = runs_of(api, app_id)
    path = tmp_path / "in.json"
    path.write_text('{"a": 1}\n')
    proc = orch(daemon, f"app run -a {app_id} -w --format multi-file -i", path, code=None)
    assert one_line(proc) == (
        f"error: --format multi-file takes a folder, and {path} is a file: give -i FOLDER"
    )
    piped = orch(daemon, f"app run -a {app_id} --format csv-archive", stdin="a\n", code=None)
    assert one_line(piped) == (
        "error: --format csv-archive takes a folder, and the input on stdin is a file: "
        "give -i FOLDER"
    )
    assert runs_of(api, app_id) == before


@pytest.fixture
def requests_made(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """(method, path) of each request the CLI makes, run in this process."""
    made: list[tuple[str, str]] = []
    real = Transport.request

    def spy(self: Transport, method: str, path: str, **kwargs: Any) -> Any:
        made.append((method, path))
        return real(self, method, path, **kwargs)

    monkeypatch.setattr(Transport, "request", spy)
    yield made


def test_json_asks_the_app_format_only_when_the_daemon_refuses_it(
    daemon: Daemon, knap: str, folder_apps: dict[str, str], requests_made: list[tuple[str, str]]
) -> None:
    """The common run, JSON for a json app, is one request, as before: the format is
    looked up only once the daemon has refused the input, to say what to give instead."""
    home = ["--home", str(daemon.home)]
    runner = CliRunner()
    done = runner.invoke(cli, ["app", "run", "-a", knap, "-i", str(KNAPSACK_INPUT), *home])
    assert done.exit_code == 0, done.output
    assert requests_made == [("POST", f"/v1/applications/{knap}/runs")]
    requests_made.clear()
    multi = folder_apps["multi-file"]
    refused = runner.invoke(cli, ["app", "run", "-a", multi, "-i", str(KNAPSACK_INPUT), *home])
    assert refused.exit_code == 2, refused.output
    assert f"app {multi} (instance devint) takes multi-file input" in refused.output
    assert requests_made == [
        ("POST", f"/v1/applications/{multi}/runs"),
        ("GET", f"/v1/applications/{multi}/executable"),
    ]


# an empty output path


def test_an_empty_output_path_is_refused_before_the_run(
    daemon: Daemon, api: httpx.Client, knap: str
) -> None:
    """``-u ""`` is ``Path("")``, which is ``.``: its folder exists, so the run was made
    and then failed writing ``.`` (exit 1). Refused as ``-i ""`` and ``-a ""`` are."""
    before = runs_of(api, knap)
    for empty in ("", " "):
        proc = orch(daemon, f"app run -a {knap} -w -i", KNAPSACK_INPUT, ["-u", empty], code=None)
        assert one_line(proc) == (
            "error: --output is empty: give a file to write (is a shell variable unset?)"
        )
    assert runs_of(api, knap) == before, "a run was made for an output it could not write"
    result = orch(daemon, f"app run result -a {knap} -r run-none", ["-u", ""], code=None)
    assert one_line(result).startswith("error: --output is empty")


# options typed before an action


def test_app_home_and_json_before_an_action_are_the_actions(
    daemon: Daemon, knap: str, knap_run: str
) -> None:
    """``-a`` before ``result`` was dropped (``missing option '--app-id'``) and ``--json``
    ignored; ``--home`` before it already reached it, and still does."""
    shown = orch(daemon, f"app run -a {knap} result -r {knap_run}")
    assert json.loads(shown.stdout)["solutions"]
    whole = orch(daemon, f"app run --json result -a {knap} -r {knap_run}")
    assert json.loads(whole.stdout)["id"] == knap_run
    homed = orch(
        daemon,
        "app run --home",
        daemon.home,
        f"-a {knap} --json metadata -r {knap_run}",
        home=False,
    )
    assert json.loads(homed.stdout)["id"] == knap_run


def test_an_app_typed_before_an_action_beats_orch_app_id_not_one_typed_after(
    daemon: Daemon, knap: str, knap_run: str
) -> None:
    """Handed to the action as a default, ``ORCH_APP_ID`` would have won over the -a typed
    before it; a flag typed wins over the environment, and the one nearest the action
    wins over the other."""
    env = {"ORCH_APP_ID": "nope"}
    typed = orch(daemon, f"app run -a {knap} --json metadata -r {knap_run}", env=env)
    assert json.loads(typed.stdout)["id"] == knap_run
    after = orch(daemon, f"app run -a nope --json metadata -a {knap} -r {knap_run}")
    assert json.loads(after.stdout)["id"] == knap_run
    wrong = orch(daemon, f"app run -a {knap} metadata -a nope -r {knap_run}", code=1)
    assert "not found in app 'nope'" in wrong.stderr


def test_run_options_before_an_action_are_refused(
    daemon: Daemon, api: httpx.Client, knap: str, knap_run: str
) -> None:
    """``-w`` or ``-i`` before ``result`` looked taken and was dropped; ``--json`` before an
    action that has none was too. Each is refused, naming the action."""
    before = runs_of(api, knap)
    cases = {
        f"app run -w result -a {knap} -r {knap_run}": (
            "--wait does not apply to '{path} result' when typed before it: give it after 'result'"
        ),
        f"app run -i {KNAPSACK_INPUT} result -a {knap} -r {knap_run}": (
            "--input does not apply to '{path} result'"
        ),
        f"app run -a {knap} --json logs -r {knap_run}": "--json does not apply to '{path} logs'",
    }
    for args, said in cases.items():
        line = one_line(orch(daemon, args, code=None))
        path = line.split("'")[1].rsplit(" ", 1)[0]  # "orch app run" or "python -m ..."
        assert path.endswith("app run"), line
        assert line == "error: " + said.format(path=path)
    assert runs_of(api, knap) == before


def test_nan_and_infinity_are_refused_as_json_by_the_cli_and_the_api(
    daemon: Daemon, api: httpx.Client, knap: str, tmp_path: Path
) -> None:
    """Python's json reads them, so both took them, and the model got ``{"a":Infinity}``,
    which JSON (and most models' parsers) has no number for."""
    before = runs_of(api, knap)
    path = tmp_path / "in.json"
    path.write_text('{"a": NaN}')
    proc = orch(daemon, f"app run -a {knap} -w -i", path, code=1)
    assert f"{path} is not valid JSON: NaN is not a JSON value" in proc.stderr
    raw = b'{"input": {"a": Infinity}}'
    headers = {"content-type": "application/json"}
    r = api.post(f"/v1/applications/{knap}/runs", content=raw, headers=headers)
    assert r.status_code == 400
    assert r.json()["error"] == (
        "input is not valid JSON: it holds NaN or Infinity, which JSON has no numbers for"
    )
    up = api.post(f"/v1/applications/{knap}/runs/uploadurl").json()
    assert httpx.put(up["upload_url"], content=b'{"a": -Infinity}').status_code == 200
    r = api.post(f"/v1/applications/{knap}/runs", json={"upload_id": up["upload_id"]})
    assert r.status_code == 400
    assert r.json()["error"] == "input is not valid JSON: -Infinity is not a JSON value"
    assert runs_of(api, knap) == before, "a refused input created a run"
