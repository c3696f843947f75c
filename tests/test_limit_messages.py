"""A limit's failure message never shows the measure under the limit it broke.

``cpu time limit 0.01 s exceeded: used 0.0 s`` read as a run stopped for using nothing:
the measure was rounded to one decimal. Pure formatting (``models.Failure.message``).
"""

from __future__ import annotations

import re

import pytest

from orchestrator.models import Failure, FailureKind

CPU, TIMEOUT, OUTPUT = FailureKind.CPU, FailureKind.TIMEOUT, FailureKind.OUTPUT


@pytest.mark.parametrize(
    ("kind", "limit", "measured", "message"),
    [
        (CPU, 0.01, 0.01017, "cpu time limit 0.01 s exceeded: used 0.0102 s"),
        (CPU, 0.5, 0.5, "cpu time limit 0.5 s exceeded: used 0.500 s"),
        (CPU, 2.21, 2.2101, "cpu time limit 2.21 s exceeded: used 2.21 s"),
        (CPU, 2, 2.04, "cpu time limit 2 s exceeded: used 2.0 s"),  # as before from 1 s on
        (TIMEOUT, 0.05, 0.0512, "timeout of 0.05 s exceeded: ran 0.0512 s"),
        (TIMEOUT, 1, 1.0003, "timeout of 1 s exceeded: ran 1.0 s"),
        (OUTPUT, 1, 1.2, "output limit 1 MiB exceeded: wrote 1.2 MiB"),
        (FailureKind.MEMORY, 256, 301.2, "memory limit 256 MiB exceeded: peak 301 MiB"),
    ],
)
def test_the_measure_is_printed_as_precisely_as_it_takes(
    kind: FailureKind, limit: float, measured: float, message: str
) -> None:
    assert Failure(kind, limit, measured).message == message


@pytest.mark.parametrize("kind", [CPU, TIMEOUT, OUTPUT])
@pytest.mark.parametrize("limit", [0.001, 0.01, 0.015, 0.3333333, 1.25, 2.21, 7.777, 1e9])
def test_a_breach_never_reads_under_its_limit(kind: FailureKind, limit: float) -> None:
    for over in (0.0, 1e-9, 1e-4, 0.004, 0.05):
        measured = limit * (1 + over)
        shown = re.findall(r"\d[\d.]*(?:e[+-]\d+)?", Failure(kind, limit, measured).message)
        assert float(shown[-1]) >= float(shown[0]), (limit, measured, shown)
