"""The command line as people use it: ``orch --version``, ``orch app list`` and
``orch app run --wait`` on the knapsack sample, start to exit, each a fresh process; and
``orch daemon start`` on a home used before (a second daemon, stopped after each round),
from the command to the daemon answering.

Baselines, interleaved with them: the interpreter starting and doing nothing
(``python -c pass``: what no Python CLI can go below), and the knapsack model run
bare (``python main.py < input.json``), which ``orch app run --wait`` runs through the
daemon.

Every command runs as on a person's machine (``common.USER_ENV``), where Python caches
compiled modules: the warm-up round writes ``__pycache__`` and the measured rounds read
it. With ``PYTHONDONTWRITEBYTECODE`` set (some environments set it, this project's
agents' among them), each command would compile every orch module it imports (~40 ms
more for ``orch app run``), which no installed ``orch`` does.
"""

from __future__ import annotations

import sys

from orchestrator.packaging.build import build_package

from .common import KNAPSACK, ORCH_CLI, Bench, call, http_push, wall
from .results import Row, Target, median, ms

APP = "cli-knapsack"


def scenario_cli(b: Bench) -> list[Row]:
    call(b.api, "POST", "/v1/applications", 201, json_body={"id": APP, "name": APP})
    http_push(b.api, APP, build_package(KNAPSACK, b.tmp / "packages" / f"{APP}.tar.gz").path)
    orch, home = str(ORCH_CLI), ["--home", str(b.home)]
    second = ["--home", str(b.tmp / "start-home")]  # made by the first (warm-up) round
    commands = {
        "version": [orch, "--version"],
        "list": [orch, "app", "list", *home],
        "run": [orch, "app", "run", "-a", APP, "-i", str(KNAPSACK / "input.json"), "-w", *home],
        "start": [orch, "daemon", "start", "--port", "0", *second],
        "python": [sys.executable, "-c", "pass"],
    }
    untimed = {"start": [orch, "daemon", "stop", *second]}
    times: dict[str, list[float]] = {k: [] for k in [*commands, "bare"]}
    for _ in range(b.sizes.cli_runs + 1):  # the first round warms the caches
        for key, argv in commands.items():
            times[key].append(wall(argv))
            if key in untimed:
                wall(untimed[key])
        model = [b.python, "main.py"]
        times["bare"].append(wall(model, KNAPSACK, KNAPSACK / "input.json"))
    t = {k: ms(median(v[1:])) for k, v in times.items()}
    python = "python -c pass (interpreter start-up)"
    bare = "python main.py < input.json (the knapsack model, bare)"
    return [
        Row("orch --version: median", t["version"], t["python"], "ms", _at_most(150), python),
        Row("orch app list: median", t["list"], t["python"], "ms", _at_most(200), python),
        Row("orch app run --wait (knapsack): median", t["run"], t["bare"], "ms", None, bare),
        Row(
            "orch app run --wait (knapsack): overhead (median)",
            t["run"] - t["bare"],
            None,
            "ms",
            _at_most(150),
        ),
        Row("orch daemon start: median", t["start"], t["python"], "ms", None, python),
    ]


def _at_most(bound: float) -> Target:
    return Target("orch", "<=", bound, "ms")
