"""The benchmark cannot rot: ``scripts/bench --quick`` runs every scenario end to end."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.alone  # it loads every core: scripts/test runs it after the rest

ROOT = Path(__file__).resolve().parent.parent

EXPECTED = (
    "latency python: median",
    "latency python: p90",
    "latency python: overhead",
    "latency binary: median",
    "latency binary: p90",
    "latency binary: overhead",
    "latency python vs SDK local runner: median",
    "throughput",
    "CPU per run, sleeping model: daemon",
    "CPU per run, CPU-bound model: daemon",
    "CPU per run, CPU-bound model: the model",
    "CPU per run, CPU-bound model: client",
    "orch --version",
    "orch app list",
    "orch app run --wait (knapsack): median",
    "orch app run --wait (knapsack): overhead",
    "push dir",
    "orch app push",
    "experiment",
    "large input",
    "get one run",
    "newest page of 50",
    "daemon RSS idle",
    "daemon RSS peak",
)
"""A prefix of every row's name: a scenario that disappears fails the test."""


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _quick(script: str, tmp_path: Path, timeout: float, *args: str) -> tuple[str, Any]:
    """Run ``scripts/<script> [args] --quick`` (a file, or a package folder); its stdout and
    the JSON report it wrote."""
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args, "--quick", "--json", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout, json.loads(out.read_text())


@pytest.mark.timeout(200)
def test_quick_bench_reports_every_scenario_with_numbers(tmp_path: Path) -> None:
    stdout, report = _quick("bench", tmp_path, timeout=150)

    assert set(report["machine"]) >= {"cpu", "cores", "memory_gib", "python", "kernel"}
    assert report["machine"]["cores"] >= 1
    assert _number(report["duration_s"]) and report["started_at"]
    rows = report["scenarios"]
    for prefix in EXPECTED:
        assert any(r["name"].startswith(prefix) for r in rows), f"no {prefix!r} row"
    for row in rows:
        assert row["error"] is None, row
        assert _number(row["orch"]), row
        assert row["unit"], row
        if row["baseline"] is not None:
            assert _number(row["baseline"]) and _number(row["ratio"]), row
        if row["target"] is not None:
            assert isinstance(row["passed"], bool), row
    with_baseline = [r for r in rows if r["baseline"] is not None]
    assert len(with_baseline) >= 0.7 * len(rows), "most figures come with a baseline"
    throughput = [r for r in rows if r["name"].startswith("throughput")]
    assert len(throughput) == 2 and all(r["target"] == "ratio >= 0.9x" for r in throughput)
    cpu = {r["name"]: r for r in rows if r["name"].startswith("CPU per run")}
    assert all(r["orch"] > 0 for r in cpu.values()), cpu
    daemon = cpu["CPU per run, CPU-bound model: daemon"]
    assert "by thread: loop" in daemon["baseline_is"], daemon
    model = cpu["CPU per run, CPU-bound model: the model"]
    assert model["baseline"] > 20, "the CPU-bound model does work: tens of ms bare"
    assert "scenario" in stdout and "verdict" in stdout  # the table was printed


@pytest.mark.timeout(120)
def test_quick_sandbox_bench_reports_the_containment_ceiling(tmp_path: Path) -> None:
    stdout, report = _quick("bench_sandbox.py", tmp_path, timeout=100)
    per_run = report.pop("cpu_per_run")
    assert "sampling" in report  # always available; "cgroup" too where the host allows it
    for mode, figures in report.items():
        assert set(figures) == {"runs_per_s", "xargs_runs_per_s", "ratio"}, mode
        assert all(_number(v) and v > 0 for v in figures.values()), figures
        rate, base = figures["runs_per_s"], figures["xargs_runs_per_s"]
        assert figures["ratio"] == pytest.approx(rate / base)
        assert mode in stdout
    steps = per_run["steps_us"]
    assert {"clone", "command", "drop"} <= set(steps) and all(us >= 0 for us in steps.values())
    assert per_run["jail_us"] == pytest.approx(sum(steps.values()))
    assert per_run["model_after_exec_us"] > 0 and per_run["bare_us"] > 0
    assert per_run["zygote_us"] > 0  # one clone per run, read in nanoseconds
    assert "jail, all steps" in stdout


@pytest.mark.timeout(120)
def test_quick_ab_bench_compares_two_trees(tmp_path: Path) -> None:
    """The same tree on both sides: every paired figure is there and plausible."""
    stdout, report = _quick("bench_ab.py", tmp_path, 100, str(ROOT), str(ROOT))
    latency, throughput = report["latency"], report["throughput"]
    assert set(latency["median_ms"]) == {"A", "B", "bare"}
    assert all(_number(v) and v > 0 for v in latency["median_ms"].values())
    assert _number(latency["b_minus_a_ms"]["median"])
    assert set(throughput["runs_per_s"]) == {"A", "B", "xargs"}
    assert len(throughput["b_over_a"]["per_pass"]) == throughput["passes"]
    assert all(_number(x) and x > 0 for x in throughput["b_over_a"]["per_pass"])
    assert "B/A median" in stdout
