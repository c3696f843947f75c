"""``orch app run track|compare|assets``: tracked runs, comparing runs, assets from the CLI."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from tests.cli_run import new_app, orch, orch_json
from tests.helpers import SAMPLES, Daemon, wait_for, write_app

KNAPSACK_INPUT = SAMPLES / "knapsack" / "input.json"
OUTPUT = {"solutions": [], "statistics": {"result": {"value": 3, "custom": {"gap": 0.5}}}}
PNG = b"\x89PNG\r\n\x1a\n\x00\x01\x02"
ASSETS_MAIN = f"""\
import json, sys
json.dump({{"solutions": [], "statistics": {{"result": {{"value": 1}}}}, "assets": [
    {{"name": "chart", "content": {{"k": [1]}},
      "visual": {{"schema": "chartjs", "label": "Chart"}}}},
    {{"name": "pic", "content_type": "image/png", "encoding": "base64",
      "content": {base64.b64encode(PNG).decode()!r}}},
]}}, sys.stdout)
"""


@pytest.fixture(scope="module")
def knap(daemon: Daemon) -> str:
    return new_app(daemon, SAMPLES / "knapsack")


def test_track_records_a_finished_run_and_compare_shows_the_differences(
    daemon: Daemon, knap: str, tmp_path: Path
) -> None:
    out, log = tmp_path / "out.json", tmp_path / "log.txt"
    out.write_text(json.dumps(OUTPUT))
    log.write_text("ran on the cluster\n")
    tracked = orch(
        daemon,
        f"app run track -a {knap} -i",
        KNAPSACK_INPUT,
        "-u",
        out,
        "--log",
        log,
        "--duration 2.5 -n elsewhere",
    ).stdout.strip()
    info = orch_json(daemon, f"app run metadata -a {knap} -r {tracked}")
    meta = info["metadata"]
    assert meta["status_v2"] == "succeeded" and meta["run_type"] == {"type": "external"}
    assert meta["duration"] == 2500 and meta["metrics"]["result.custom.gap"] == 0.5
    assert "yes: ran elsewhere" in orch(daemon, f"app run metadata -a {knap} -r {tracked}").stdout
    assert json.loads(orch(daemon, f"app run result -a {knap} -r {tracked}").stdout) == OUTPUT
    assert orch(daemon, f"app run logs -a {knap} -r {tracked}").stdout == "ran on the cluster\n"

    executed = orch(daemon, f"app run -a {knap} -w -i", KNAPSACK_INPUT, "--json")
    executed_id = json.loads(executed.stdout)["id"]
    rows = orch_json(daemon, f"app run compare -a {knap} -r {executed_id} -r {tracked}")
    assert rows["metric.result.value"] == {executed_id: 444, tracked: 3}
    assert rows["type"] == {executed_id: "standard", tracked: "external"}
    assert rows["input"][executed_id] == rows["input"][tracked] is not None  # one document
    shown = orch(daemon, f"app run compare -a {knap} -r {executed_id} -r {tracked}").stdout
    assert "metric.result.value" in shown and "444" in shown and "*" in shown

    failed = orch(
        daemon, f"app run track -a {knap} -i", KNAPSACK_INPUT, "--failed --error no-luck"
    ).stdout.strip()
    meta = orch_json(daemon, f"app run metadata -a {knap} -r {failed}")["metadata"]
    assert meta["status_v2"] == "failed" and meta["error"] == "no-luck"


def test_compare_and_the_run_list_tell_which_push_and_which_input_a_run_had(
    daemon: Daemon, tmp_path: Path
) -> None:
    """Runs on devint have no version: compare showed ``version - / -`` and the list ``-``,
    and nothing told two pushes or two inputs apart, what differs most between them."""
    folder = tmp_path / "knapsack"
    shutil.copytree(SAMPLES / "knapsack", folder)
    app_id = new_app(daemon, folder)
    first = orch(daemon, f"app run -a {app_id} -i", KNAPSACK_INPUT).stdout.strip()
    with (folder / "main.py").open("a") as fh:
        fh.write("# an edit: another push\n")
    orch(daemon, f"app push -a {app_id} --app-dir", folder)
    other = tmp_path / "input.json"
    doc = json.loads(KNAPSACK_INPUT.read_text())
    other.write_text(json.dumps(doc | {"weight_capacity": doc["weight_capacity"] + 1}))
    second = orch(daemon, f"app run -a {app_id} -i", other).stdout.strip()
    same_input = orch(daemon, f"app run -a {app_id} -i", other).stdout.strip()

    rows = orch_json(daemon, f"app run compare -a {app_id} -r {first} -r {second}")
    executables = {
        run: orch_json(daemon, f"app run metadata -a {app_id} -r {run}")["metadata"][
            "executable_id"
        ]
        for run in (first, second)
    }
    assert rows["executable"] == {run: exe[:12] for run, exe in executables.items()}
    assert rows["input"][first] != rows["input"][second]
    shown = orch(daemon, f"app run compare -a {app_id} -r {first} -r {second}").stdout
    cells = [line.split("│") for line in shown.splitlines() if "│" in line]
    marked = {row[1].strip() for row in cells if row[0].strip() == "*"}
    assert {"executable", "input"} <= marked, shown
    again = orch_json(daemon, f"app run compare -a {app_id} -r {second} -r {same_input}")
    assert len(set(again["input"].values())) == 1 and len(set(again["executable"].values())) == 1

    listed = orch(daemon, f"app run list -a {app_id}").stdout
    for run, exe in executables.items():
        line = next(line for line in listed.splitlines() if run in line)
        assert f"@{exe[:12]}" in line, listed


def test_an_error_message_makes_the_tracked_run_failed(daemon: Daemon, knap: str) -> None:
    """``--error`` without ``--failed`` recorded a succeeded run and dropped the text."""
    tracked = orch(
        daemon, f"app run track -a {knap} -i", KNAPSACK_INPUT, ["--error", "solver gave up"]
    ).stdout.strip()
    meta = orch_json(daemon, f"app run metadata -a {knap} -r {tracked}")["metadata"]
    assert meta["status_v2"] == "failed" and meta["error"] == "solver gave up"


def test_compare_needs_two_different_runs(daemon: Daemon, knap: str) -> None:
    proc = orch(daemon, f"app run compare -a {knap} -r run-a -r run-a", code=2)
    assert "2 to 20 different runs" in proc.stderr


def test_assets_list_and_download(daemon: Daemon, tmp_path: Path) -> None:
    app_id = new_app(daemon, write_app(tmp_path / "a", ASSETS_MAIN))
    run_id = json.loads(orch(daemon, f"app run -a {app_id} -w --json -i -", stdin="{}").stdout)[
        "id"
    ]
    listed = orch_json(daemon, f"app run assets -a {app_id} -r {run_id}")["items"]
    assert [(a["name"], a["content_type"]) for a in listed] == [
        ("chart", "json"),
        ("pic", "image/png"),
    ]
    table = orch(daemon, f"app run assets -a {app_id} -r {run_id}").stdout
    assert "chart" in table and "Chart" in table
    chart = orch(daemon, f"app run assets -a {app_id} -r {run_id} --asset-id {listed[0]['id']}")
    assert json.loads(chart.stdout) == {"k": [1]}
    target = tmp_path / "pic.png"
    orch(daemon, f"app run assets -a {app_id} -r {run_id} --asset-id {listed[1]['id']} -u", target)
    assert target.read_bytes() == PNG
    missing = orch(daemon, f"app run assets -a {app_id} -r {run_id} --asset-id nope", code=1)
    assert "not found" in missing.stderr


def test_queue_lists_what_waits_and_runs_across_apps(daemon: Daemon, tmp_path: Path) -> None:
    """Other tests' runs may share the daemon: only this app's entries are checked."""
    slow = new_app(daemon, write_app(tmp_path / "slow", "import time; time.sleep(60)\n"))
    running = orch(daemon, f"app run -a {slow} -i", KNAPSACK_INPUT, "-n first").stdout.strip()

    def mine() -> list[tuple[str, str, str]]:
        queue = orch_json(daemon, "queue")["runs"]
        return [(r["id"], r["name"], r["status_v2"]) for r in queue if r["application_id"] == slow]

    assert wait_for(lambda: mine() == [(running, "first", "running")], 30), mine()
    assert running in orch(daemon, "queue").stdout
    orch(daemon, f"app run cancel -a {slow} -r {running}")
    assert wait_for(lambda: mine() == [], 30)


def test_compare_shows_the_digits_that_make_a_difference(
    daemon: Daemon, knap: str, tmp_path: Path
) -> None:
    """``*`` marked ``0.004 │ 0.004``: 0.0042 and 0.0038 at the table's 3 decimals."""
    runs = []
    for gap, value in ((0.0042, 4), (0.0038, 4.0)):
        out = tmp_path / f"out-{gap}.json"
        custom = {"gap": gap, "same": 0.5, "far": 0.005173 if gap > 0.004 else 5.005}
        stats = {"result": {"value": value, "custom": custom}}
        out.write_text(json.dumps({"solutions": [], "statistics": stats}))
        args = ("-u", out, "--duration 2.5")
        runs.append(orch(daemon, f"app run track -a {knap} -i", KNAPSACK_INPUT, *args).stdout)
    first, second = (r.strip() for r in runs)
    shown = orch(daemon, f"app run compare -a {knap} -r {first} -r {second}").stdout
    split = [[c.strip() for c in line.split("│")] for line in shown.splitlines() if "│" in line]
    cells = {row[1]: [row[0], *row[2:]] for row in split}  # field: mark, first, second
    assert cells["metric.result.custom.gap"] == ["*", "0.0042", "0.0038"]
    assert cells["metric.result.value"] == ["", "4", "4"]  # 4 and 4.0: the same number
    assert cells["metric.result.custom.same"] == ["", "0.5", "0.5"]
    # at the table's 3 decimals they already look different, as on the console's page
    assert cells["metric.result.custom.far"] == ["*", "0.005", "5.005"]
