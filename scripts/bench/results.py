"""Figures, targets and the printed table: what every scenario returns and how it reads."""

from __future__ import annotations

import argparse
import math
import operator
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class Target:
    on: str  # "ratio" (orch / baseline) or "orch" (the figure itself)
    op: str  # "<", "<=" or ">="
    bound: float
    unit: str = "x"

    def met(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.bound)

    def __str__(self) -> str:
        bound = f"{self.bound:g}{self.unit}" if self.unit == "x" else f"{self.bound:g} {self.unit}"
        return f"{self.on} {self.op} {bound}"


@dataclass
class Row:
    name: str
    orch: float | None
    baseline: float | None
    unit: str
    target: Target | None = None
    baseline_is: str = ""
    error: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.orch is None or not self.baseline:
            return None
        return self.orch / self.baseline

    @property
    def passed(self) -> bool | None:
        if self.target is None or self.orch is None:
            return None if self.error is None else False
        value = self.ratio if self.target.on == "ratio" else self.orch
        return None if value is None else self.target.met(value)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "orch": _rounded(self.orch),
            "baseline": _rounded(self.baseline),
            "unit": self.unit,
            "ratio": _rounded(self.ratio),
            "target": str(self.target) if self.target else None,
            "passed": self.passed,
            "baseline_is": self.baseline_is,
            "error": self.error,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def p90(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=10, method="inclusive")[-1] if len(xs) > 1 else xs[0]


def ms(seconds: float) -> float:
    return seconds * 1000


def median_pair(pairs: list[tuple[float, float]]) -> tuple[float, float, str]:
    """The (figure, baseline) pair with the median ratio, and every ratio, lowest first."""
    ranked = sorted(pairs, key=lambda pair: pair[0] / pair[1])
    figure, baseline = ranked[len(ranked) // 2]
    return figure, baseline, ", ".join(f"{f / b:.2f}x" for f, b in ranked)


# --- the machine ------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")),
        platform.processor() or "unknown",
    )
    return {
        "cpu": model,
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def load_line() -> str:
    """The 1, 5 and 15 minute load averages: the machine is shared, so figures travel with it."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def tree_arguments(parser: argparse.ArgumentParser) -> None:
    """The two source trees an A/B script compares (each daemon imports its own tree)."""
    parser.add_argument("a", type=Path, help="source tree A (the baseline)")
    parser.add_argument("b", type=Path, nargs="?", default=Path("."), help="source tree B")


def file_create_us(folder: Path, count: int = 30) -> float:
    """CPU to create one empty file here, one every 20 ms as runs make them (median, µs).

    A run makes ~9 files and folders, so their cost shows in orch's figures and not in the
    baselines'. On this project's VM a file made 20 ms after the last costs 40-150 µs even
    on a tmpfs (in a tight loop 3-5 µs): the host's caches have gone cold in between
    (``tmpfs_file_create_us`` reads that part). On ext4 without a journal (the VM's disk)
    an inode allocation also skips every inode of its block group freed in the last
    minutes, one buffer lookup each, which makes hundreds of µs after a bulk delete nearby
    (another bench's clean-up, a test suite). The files stay (deleting them would add to
    what it measures) and go with the bench's home.
    """
    folder.mkdir()
    costs = []
    for i in range(count):
        time.sleep(0.02)  # as far apart as runs are: a tight loop keeps what it touches cached
        start = time.thread_time_ns()
        os.close(os.open(folder / str(i), os.O_CREAT | os.O_WRONLY, 0o644))
        costs.append((time.thread_time_ns() - start) / 1000)
    return median(costs)


def tmpfs_file_create_us() -> float | None:
    """``file_create_us`` on ``/dev/shm``, a tmpfs, where no inode is looked for on a disk:
    what the cold caches alone cost, the reference the bench's own figure is read against.
    None where there is no ``/dev/shm``."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        return None
    folder = Path(tempfile.mkdtemp(prefix="orch-bench-", dir=shm))
    try:
        return file_create_us(folder / "files")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- the table --------------------------------------------------------------------------------
def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    digits = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:,.{digits}f}"


def verdict(row: Row, enforced: bool) -> str:
    if row.error:
        return "ERROR"
    if row.passed is None:
        return "—"
    word = "PASS" if row.passed else "MISS"
    return word if enforced else word.lower()


def print_table(rows: list[Row], enforced: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="orch benchmark", title_justify="left")
    for col in ("scenario", "orch", "baseline", "ratio", "target", "verdict"):
        table.add_column(col, justify="left" if col == "scenario" else "right")
    for row in rows:
        unit = f" {row.unit}" if row.unit else ""
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "—"
        orch = f"error: {row.error[:60]}" if row.error else f"{fmt(row.orch)}{unit}"
        base = f"{fmt(row.baseline)}{unit}" if row.baseline is not None else "—"
        table.add_row(row.name, orch, base, ratio, str(row.target or "—"), verdict(row, enforced))
    console = Console(width=170)
    console.print(table)
    console.print("Baselines:")
    for row in rows:
        if row.baseline_is:
            console.print(f"  {row.name}: {row.baseline_is}", highlight=False)
    if not enforced:
        console.print("(--quick: verdicts in lower case are indicative; targets are not enforced)")
