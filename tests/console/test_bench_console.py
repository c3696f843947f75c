"""The console benchmark cannot rot: ``scripts/bench_console.py --quick`` end to end."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.alone  # it loads every core: scripts/test runs it after the rest


@pytest.mark.timeout(240)
def test_quick_console_bench_reports_page_loads_and_run_end_to_page(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_console.py"), "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=220, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    report = json.loads(out.read_text())
    assert report["runs"] == 2000
    assert set(report["machine"]) >= {"cpu", "cores", "load_average", "load_average_after"}
    rows = {r["name"]: r for r in report["rows"]}
    for name in ("/runs, first page (HTML)", "run page (HTML)"):
        assert rows[name]["target_ms"] == 150 and rows[name]["baseline_ms"] > 0
    (end,) = [r for n, r in rows.items() if n.startswith("run end")]
    assert end["target_ms"] == 300 and end["baseline_ms"] is not None
    for r in report["rows"]:
        assert math.isfinite(r["median_ms"]) and r["median_ms"] >= 0, r
    assert "machine:" in done.stdout and "load average" in done.stdout
