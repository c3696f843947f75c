"""The dask benchmark cannot rot: ``scripts/bench_dask.py --quick`` runs every scenario."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.alone  # it loads every core: scripts/test runs it after the rest

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = (
    "python echo on dask: median",
    "dispatch overhead per run",
    "throughput 20 ms model on dask",
    "experiment on dask",
)


@pytest.mark.timeout(180)
def test_quick_dask_bench_reports_every_figure_with_its_baseline(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_dask.py"), "--quick", "--json", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    report = json.loads(out.read_text())
    assert report["cluster"]["workers"] == 2 and report["machine"]["load_average"]
    rows = {row["name"]: row for row in report["scenarios"]}
    for prefix in EXPECTED:
        row = next((r for name, r in rows.items() if name.startswith(prefix)), None)
        assert row is not None and row["error"] is None, prefix
        assert isinstance(row["orch"], float) and math.isfinite(row["orch"]), row
    for name, row in rows.items():
        if not name.startswith("dispatch"):
            assert row["baseline"] and row["ratio"], row  # every figure next to its baseline
    assert "dispatch overhead" in proc.stdout and "load average" in proc.stdout
