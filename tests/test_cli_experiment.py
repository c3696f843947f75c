"""``orch experiment input-set|batch ...`` as a subprocess against the session daemon.

One knapsack app is shared by the module: instance "good" solves exactly, "worse" divides
the weights by 8, which on these inputs (many light items) always finds a lower value.
The objective is max, so "worse" loses on every input, by 10-30 %.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path
from subprocess import DEVNULL, PIPE
from typing import Any

import httpx
import pytest

from tests.helpers import SAMPLES, Daemon, create_app, push_dir, unique, wait_for

ENV = {k: v for k, v in os.environ.items() if k not in ("ORCH_URL", "ORCH_API_KEY", "ORCH_HOME")}
ENV["COLUMNS"] = "250"  # wide tables: cells are not cut with "…"
CLI = [sys.executable, "-m", "orchestrator", "experiment"]


def orch(
    daemon: Daemon, *args: str | Path, code: int | None = 0
) -> subprocess.CompletedProcess[str]:
    """``orch experiment ARGS --home HOME``; asserts the exit code unless ``code`` is None."""
    argv = [*CLI, *map(str, args), "--home", str(daemon.home)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=90, stdin=DEVNULL)
    if code is not None:
        assert proc.returncode == code, (
            f"{argv} exited {proc.returncode}, wanted {code}\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
    return proc


def rows(text: str, first: str = "") -> list[list[str]]:
    """The cells of the table rows (of all tables in ``text``) that start with ``first``."""
    found = [[c.strip() for c in line.split("│")] for line in text.splitlines() if "│" in line]
    return [cells for cells in found if cells[0].startswith(first)]


def knapsack_input(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    items = [
        {"id": f"i{k}", "value": rng.randint(10, 100), "weight": rng.randint(2, 12)}
        for k in range(30)
    ]
    return {"weight_capacity": 80, "items": items}


def knapsack_app(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory, prefix: str) -> str:
    """The knapsack sample as a new app, with version v1 and instances good (scale 1) and
    worse (scale 8): two targets whose results differ."""
    with daemon.client() as api:
        app_id = create_app(api, unique(prefix))
        push_dir(api, app_id, SAMPLES / "knapsack", tmp_path_factory.mktemp("pkg"))
        api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"})
        for inst, scale in (("good", "1"), ("worse", "8")):
            body = {"id": inst, "version_id": "v1", "configuration": {"options": {"scale": scale}}}
            assert api.post(f"/v1/applications/{app_id}/instances", json=body).status_code == 201
    return app_id


@pytest.fixture(scope="module")
def app_id(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    return knapsack_app(daemon, tmp_path_factory, "exp")


@pytest.fixture(scope="module")
def input_set(daemon: Daemon, app_id: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Ten inputs from a folder (plus a dot file that must be skipped)."""
    folder = tmp_path_factory.mktemp("inputs")
    for seed in reversed(range(10)):
        (folder / f"case-{seed:02d}.json").write_text(json.dumps(knapsack_input(seed)))
    (folder / ".DS_Store").write_text("junk")
    orch(daemon, "input-set", "create", "-a", app_id, "-s", "ten", "-n", "Ten", "--dir", folder)
    return "ten"


@pytest.fixture(scope="module")
def finished(daemon: Daemon, app_id: str, input_set: str) -> subprocess.CompletedProcess[str]:
    """good vs worse on the ten inputs, waited for: the summary tables are its stdout."""
    return orch(
        daemon,
        *("batch", "start", "-a", app_id, "-b", "gw", "-s", input_set),
        *("--instance-ids", "good,worse"),
        *("--baseline", "good", "--objective", "max", "-n", "Good vs worse", "--wait"),
        *("--seed", "4242"),
    )


def _start_gated(daemon: Daemon, app_id: str, exp_id: str, *flags: str, code: int) -> Any:
    return orch(
        daemon,
        *("batch", "start", "-a", app_id, "-b", exp_id, "-s", "ten"),
        *("--instance-ids", "good", "--instance-ids", "worse"),
        *("--baseline", "good", "--objective", "max", "--wait", *flags),
        code=code,
    )


def test_input_set_from_a_folder(daemon: Daemon, app_id: str, input_set: str) -> None:
    data = json.loads(
        orch(daemon, "input-set", "get", "-a", app_id, "-s", input_set, "--json").stdout
    )
    assert [i["name"] for i in data["inputs"]] == [f"case-{s:02d}.json" for s in range(10)]
    assert {i["format"]["input"]["type"] for i in data["inputs"]} == {"json"}
    shown = orch(daemon, "input-set", "get", "-a", app_id, "-s", input_set).stdout
    assert "case-09.json" in shown and "Ten" in shown
    orch(daemon, "input-set", "update", "-a", app_id, "-s", input_set, "-d", "ten cases")
    listed = orch(daemon, "input-set", "list", "-a", app_id).stdout
    assert rows(listed, "ten")[0][:4] == ["ten", "Ten", "10", "ten cases"]


def test_wait_prints_outcomes_metrics_and_comparison(
    finished: subprocess.CompletedProcess[str],
) -> None:
    text = finished.stdout
    assert "Runs by target" in text and "Metrics of succeeded runs" in text
    # runs, succeeded, failed, timed_out, canceled
    assert rows(text, "good")[0] == ["good", "10", "10", "0", "0", "0"]
    assert rows(text, "worse")[0] == ["worse", "10", "10", "0", "0", "0"]
    metrics = {(r[0], r[1]) for r in rows(text) if len(r) == 9}
    for metric in ("result.value", "run.duration", "wall_time", "custom.items_selected"):
        assert {("good", metric), ("worse", metric)} <= metrics
    assert "vs baseline good (objective: max" in text
    (comparison,) = [r for r in rows(text, "worse") if len(r) == 10]
    # paired, unpaired, wins, losses, ties, mean, its interval, median, what the mean says
    assert comparison[1:6] == ["10", "0", "0", "10", "0"]
    change = r"[+-]\d+\.\d\d%"
    assert re.fullmatch(change, comparison[6]) and re.fullmatch(change, comparison[8])
    assert re.fullmatch(rf"\[{change}, {change}\]", comparison[7]), comparison
    assert float(comparison[6].rstrip("%")) < -5 and comparison[9] == "worse"
    assert "Timing vs baseline" in text
    timing = [r for r in rows(text, "worse") if len(r) == 6 and r[1] == "wall_time"]
    assert timing and timing[0][2] == "10"  # ten inputs, one repetition: ten pairs
    assert "experiment gw completed: succeeded=20" in finished.stderr


def test_json_summary_and_a_failing_gate(daemon: Daemon, app_id: str, input_set: str) -> None:
    proc = _start_gated(
        daemon, app_id, "gate-fail", "--json", "--fail-if", "result.value < baseline * 0.99", code=1
    )
    summary = json.loads(proc.stdout)
    assert [t["target"] for t in summary["targets"]] == ["good", "worse"]
    (comparison,) = summary["comparisons"]
    assert comparison["losses"] == 10 and comparison["wins"] == 0
    assert "gate failed: 10 violation(s) on 10 of 10 pairs" in proc.stderr
    assert "worse on input 'case-03.json'" in proc.stderr


def test_csv_summary_and_a_passing_gate(daemon: Daemon, app_id: str, input_set: str) -> None:
    proc = _start_gated(
        daemon, app_id, "gate-pass", "--csv", "--fail-if", "result.value < baseline * 0.5", code=0
    )
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert {(r["target"], r["metric"]) for r in rows} >= {
        ("good", "result.value"),
        ("worse", "result.value"),
    }
    assert all(r["count"] == "10" for r in rows if r["metric"] == "result.value")
    assert "gate passed: 10 pairs checked" in proc.stderr


def test_flags_are_checked_before_anything_is_queued(daemon: Daemon, app_id: str) -> None:
    base = ("batch", "start", "-a", app_id, "-b", "never", "-s", "ten", "--instance-ids", "good")
    no_wait = orch(daemon, *base, "--baseline", "good", "--fail-if", "wall_time > baseline", code=2)
    assert "--fail-if needs --wait and --baseline" in no_wait.stderr
    typo = orch(daemon, *base, "--baseline", "good", "--wait", "--fail-if", "value > 2", code=2)
    assert "--fail-if: malformed condition 'value > 2'" in typo.stderr
    bad_sets = orch(daemon, *base, "--option-sets", '{"a": 1}', code=2)
    assert "JSON object of objects" in bad_sets.stderr
    assert "never" not in orch(daemon, "batch", "list", "-a", app_id).stdout


def test_get_list_runs_and_report(
    daemon: Daemon, app_id: str, finished: subprocess.CompletedProcess[str], tmp_path: Path
) -> None:
    shown = orch(daemon, "batch", "get", "-a", app_id, "-b", "gw").stdout
    assert re.search(r"status\s+completed", shown) and re.search(r"targets\s+good, worse", shown)
    assert re.search(r"runs\s+20/20 finished", shown) and "Runs by target" in shown
    assert re.search(r"queue seed\s+4242", shown)
    as_json = json.loads(orch(daemon, "batch", "get", "-a", app_id, "-b", "gw", "--json").stdout)
    assert as_json["seed"] == 4242
    listed = rows(orch(daemon, "batch", "list", "-a", app_id).stdout, "gw")
    assert listed[0][:4] == ["gw", "Good vs worse", "completed", "20/20 finished"]
    runs = rows(orch(daemon, "batch", "runs", "-a", app_id, "-b", "gw").stdout, "run-")
    assert len(runs) == 20 and {r[6] for r in runs} == {"succeeded"}
    assert sorted(r[1] for r in runs) == ["good"] * 10 + ["worse"] * 10
    # run, target, input, input name, option set, rep, status, duration ms, result.value
    _, _, input_id, name, option_set, repetition, _, duration_ms, value = runs[0]
    assert input_id.startswith("input-") and re.fullmatch(r"case-0\d\.json", name)
    assert (option_set, repetition) == ("-", "0")
    assert int(duration_ms) >= 0 and int(value) > 500
    # input by input, the targets of one input side by side (queued shuffled)
    assert [(r[3], r[1]) for r in runs] == sorted((r[3], r[1]) for r in runs)
    assert [r[1] for r in runs[:2]] == ["good", "worse"]
    report = tmp_path / "gw.html"
    proc = orch(daemon, "batch", "report", "-a", app_id, "-b", "gw", "--html", report)
    assert "<svg" in report.read_text() and str(report) in proc.stderr


def test_input_set_from_runs_and_start_without_wait(
    daemon: Daemon, app_id: str, finished: subprocess.CompletedProcess[str]
) -> None:
    runs = json.loads(orch(daemon, "batch", "runs", "-a", app_id, "-b", "gw", "--json").stdout)
    picked = [r["id"] for r in runs["runs"][:2]]
    orch(
        daemon,
        "input-set",
        "create",
        "-a",
        app_id,
        "-s",
        "two",
        "-n",
        "Two",
        "--run-ids",
        ",".join(picked),
    )
    two = json.loads(orch(daemon, "input-set", "get", "-a", app_id, "-s", "two", "--json").stdout)
    assert [i["run_id"] for i in two["inputs"]] == picked
    proc = orch(daemon, "batch", "start", "-a", app_id, "-s", "two", "--instance-ids", "good")
    exp_id = proc.stdout.strip()
    assert re.fullmatch(r"[\w.-]+", exp_id) and "follow it with" in proc.stderr
    with daemon.client() as api:
        url = f"/v1/applications/{app_id}/experiments/batch/{exp_id}/metadata"
        wait_for(lambda: api.get(url).json()["status"] == "completed", timeout=30)
    assert (
        "Metrics of succeeded runs"
        in orch(daemon, "batch", "get", "-a", app_id, "-b", exp_id).stdout
    )


def test_input_set_sources_are_exclusive_and_leave_nothing_behind(
    daemon: Daemon, app_id: str, input_set: str, tmp_path: Path
) -> None:
    file = tmp_path / "one.json"
    file.write_text(json.dumps(knapsack_input(1)))
    base = ("input-set", "create", "-a", app_id, "-n", "X")
    none = orch(daemon, *base, "-s", "x", code=2)
    assert "exactly one source" in none.stderr
    both = orch(daemon, *base, "-s", "x", "--file", file, "--run-ids", "run-1", code=2)
    assert "exactly one source" in both.stderr and "--file, --run-ids" in both.stderr
    window = orch(daemon, *base, "-s", "x", "--file", file, "--maximum-runs", "3", code=2)
    assert "only go with --instance-id" in window.stderr
    with daemon.client() as api:
        before = len(api.get(f"/v1/applications/{app_id}/inputs").json())
        dup = orch(daemon, *base, "-s", input_set, "--file", file, code=1)
        assert "already exists" in dup.stderr
        bad_id = orch(daemon, *base, "-s", "Not An ID!", "--file", file, code=1)
        assert "error:" in bad_id.stderr
        assert len(api.get(f"/v1/applications/{app_id}/inputs").json()) == before


def test_ctrl_c_keeps_running_then_cancel_and_delete(
    daemon: Daemon, app_id: str, tmp_path: Path
) -> None:
    files: list[str | Path] = []
    for seed in (1, 2, 3):
        (tmp_path / f"slow-{seed}.json").write_text(json.dumps(knapsack_input(seed)))
        files += ["--file", tmp_path / f"slow-{seed}.json"]
    orch(daemon, "input-set", "create", "-a", app_id, "-s", "slow", "-n", "Slow", *files)
    meta = f"/v1/applications/{app_id}/experiments/batch/nap/metadata"
    with daemon.client() as api:
        err = _interrupt_waiting(daemon, app_id, api, meta)
        assert "keeps running" in err and f"orch experiment batch cancel -a {app_id} -b nap" in err
        assert api.get(meta).json()["status"] == "started"
        busy = orch(daemon, "batch", "delete", "-a", app_id, "-b", "nap", "--confirm", code=1)
        assert "cancel it first" in busy.stderr
        canceled = orch(daemon, "batch", "cancel", "-a", app_id, "-b", "nap")
        assert "experiment nap is canceled" in canceled.stderr
        wait_for(
            lambda: (c := _counts(api, meta)) and not c.get("running") and not c.get("queued"),
            timeout=20,
        )
    shown = orch(daemon, "batch", "get", "-a", app_id, "-b", "nap").stdout
    assert re.search(r"status\s+canceled", shown) and re.search(r"run counts\s+canceled=3", shown)
    runs = rows(orch(daemon, "batch", "runs", "-a", app_id, "-b", "nap").stdout, "run-")
    assert [(r[4], r[6], r[8]) for r in runs] == [("nap", "canceled", "-")] * 3
    assert "--confirm" in orch(daemon, "batch", "delete", "-a", app_id, "-b", "nap", code=1).stderr
    orch(daemon, "batch", "delete", "-a", app_id, "-b", "nap", "--confirm")
    gone = orch(daemon, "batch", "get", "-a", app_id, "-b", "nap", code=1)
    assert "error:" in gone.stderr and "not found" in gone.stderr
    orch(daemon, "input-set", "delete", "-a", app_id, "-s", "slow", "--confirm")
    assert not rows(orch(daemon, "input-set", "list", "-a", app_id).stdout, "slow")


def _interrupt_waiting(daemon: Daemon, app_id: str, api: httpx.Client, meta: str) -> str:
    """``batch start --wait`` on 20 s runs, Ctrl-C once they run; returns its stderr."""
    argv = [
        *(*CLI, "batch", "start", "-a", app_id, "-b", "nap", "-s", "slow"),
        *("--instance-ids", "good"),
        *("--option-sets", '{"nap": {"sleep": "20"}}', "--wait", "--home", str(daemon.home)),
    ]
    with subprocess.Popen(argv, stdout=PIPE, stderr=PIPE, text=True, env=ENV) as waiting:
        try:
            assert waiting.stderr is not None
            # Said once the experiment exists, right before the CLI starts waiting on it.
            assert "experiment nap started" in waiting.stderr.readline()
            wait_for(lambda: _counts(api, meta).get("running"), timeout=20)
            waiting.send_signal(signal.SIGINT)
            _, err = waiting.communicate(timeout=20)
        finally:
            waiting.kill()
    assert waiting.returncode == 130, err
    return err


def _counts(api: httpx.Client, url: str) -> dict[str, int]:
    """Run counts by status; empty until the CLI has created the experiment."""
    r = api.get(url)
    return dict(r.json()["run_counts"]) if r.status_code == 200 else {}


def test_an_experiment_where_nothing_succeeds_exits_1(
    daemon: Daemon, app_id: str, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.txt"
    broken.write_text("not a knapsack\n")
    orch(daemon, "input-set", "create", "-a", app_id, "-s", "broken", "-n", "B", "--file", broken)
    got = json.loads(
        orch(daemon, "input-set", "get", "-a", app_id, "-s", "broken", "--json").stdout
    )
    assert got["inputs"][0]["format"]["input"]["type"] == "text"
    proc = orch(
        daemon,
        *("batch", "start", "-a", app_id, "-b", "all-fail", "-s", "broken"),
        *("--instance-ids", "good", "--version-ids", "v1", "--wait"),
        code=1,
    )
    # runs, succeeded, failed, timed_out, canceled: the bare version is its own target
    assert rows(proc.stdout, "good")[0] == ["good", "1", "0", "1", "0", "0"]
    assert rows(proc.stdout, "version:v1")[0] == ["version:v1", "1", "0", "1", "0", "0"]
    assert "experiment all-fail failed: failed=2" in proc.stderr
    assert "no succeeded run reported a metric" in proc.stderr


def test_batch_get_json_includes_summary(
    daemon: Daemon, app_id: str, finished: subprocess.CompletedProcess[str]
) -> None:
    got = json.loads(orch(daemon, "batch", "get", "-a", app_id, "-b", "gw", "--json").stdout)
    assert got["id"] == "gw" and got["status"] != "started"
    assert isinstance(got["summary"], dict) and got["summary"]


def test_batch_get_csv_prints_the_summary_start_wait_csv_prints(
    daemon: Daemon, app_id: str, finished: subprocess.CompletedProcess[str]
) -> None:
    """``--csv`` worked on ``batch start --wait`` only; ``batch get`` said no such option."""
    got = orch(daemon, "batch", "get", "-a", app_id, "-b", "gw", "--csv").stdout
    with daemon.client() as api:  # what ``start --wait --csv`` writes, byte for byte
        url = f"/v1/applications/{app_id}/experiments/batch/gw/summary"
        want = api.get(url, params={"format": "csv"}).text
    assert got == want and got.startswith("target,")
    assert {r["target"] for r in csv.DictReader(io.StringIO(got))} == {"good", "worse"}
    both = orch(daemon, "batch", "get", "-a", app_id, "-b", "gw", "--csv", "--json", code=2)
    assert "give --json or --csv, not both" in both.stderr


def test_batch_get_csv_of_a_running_experiment_says_it_is_running(
    daemon: Daemon, app_id: str, tmp_path: Path
) -> None:
    (tmp_path / "one.json").write_text(json.dumps(knapsack_input(7)))
    one = ("-s", "one", "-n", "One", "--file", tmp_path / "one.json")
    orch(daemon, "input-set", "create", "-a", app_id, *one)
    orch(
        daemon,
        *("batch", "start", "-a", app_id, "-b", "napping", "-s", "one"),
        *("--instance-ids", "good", "--option-sets", '{"nap": {"sleep": "20"}}'),
    )
    try:
        proc = orch(daemon, "batch", "get", "-a", app_id, "-b", "napping", "--csv", code=1)
        assert proc.stdout == ""
        assert proc.stderr.startswith("error: experiment napping is still running (0/1 finished)")
        assert f"orch experiment batch get -a {app_id} -b napping" in proc.stderr
    finally:
        orch(daemon, "batch", "cancel", "-a", app_id, "-b", "napping")


def test_a_file_given_twice_is_one_input(daemon: Daemon, app_id: str, tmp_path: Path) -> None:
    file = tmp_path / "one.json"
    file.write_text(json.dumps(knapsack_input(1)))
    (tmp_path / "sub").mkdir()
    again = tmp_path / "sub" / ".." / "one.json"  # the same file, spelled otherwise
    base = ("input-set", "create", "-a", app_id, "-n", "Once", "-s", "once", "--json")
    made = orch(daemon, *base, "--file", file, "--file", again)
    assert len(json.loads(made.stdout)["input_ids"]) == 1
    assert f"{again} is given more than once: it is kept once" in made.stderr
