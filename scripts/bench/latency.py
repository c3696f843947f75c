"""Run latency: submit → result of a trivial model, against running it directly.

One keep-alive client POSTs the run and long-polls ``GET .../runs/{id}?wait=30``; the
baseline is ``python main.py < input > output`` (or ``./main``) with the same input,
interleaved run by run so both see the same machine.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .common import MODELS, Bench, bare, ensure_app, result, submit
from .results import Row, Target, median, ms, p90


def latency_pair(
    b: Bench, app: str, argv: list[str], cwd: Path, runs: int
) -> tuple[list[float], list[float]]:
    """Interleaved: one run through orch, one bare run, ``runs`` times (after a warm-up)."""
    doc = {"bench": "latency", "items": list(range(10))}
    stdin = b.tmp / f"{app}-input.json"
    stdin.write_text(json.dumps(doc))
    via_orch: list[float] = []
    direct: list[float] = []
    for i in range(b.sizes.warmup_runs + runs):
        start = time.perf_counter()
        body = result(b.api, app, submit(b.api, app, {"input": doc | {"n": i}}))
        took = time.perf_counter() - start
        if body.get("output") != doc | {"n": i}:
            raise RuntimeError(f"{app}: unexpected output {body.get('output')!r}")
        took_bare = bare(argv, cwd, stdin, b.tmp / f"{app}-output.json")
        if i >= b.sizes.warmup_runs:
            via_orch.append(took)
            direct.append(took_bare)
    return via_orch, direct


def latency_rows(kind: str, orch: list[float], base: list[float], cmd: str) -> list[Row]:
    ratio_target = Target("ratio", "<=", 1.2) if kind == "python" else None
    overhead = ms(median(orch) - median(base))
    return [
        Row(f"latency {kind}: median", ms(median(orch)), ms(median(base)), "ms", ratio_target, cmd),
        Row(f"latency {kind}: p90", ms(p90(orch)), ms(p90(base)), "ms", None, cmd),
        Row(
            f"latency {kind}: overhead (median)",
            overhead,
            None,
            "ms",
            Target("orch", "<=", 5, "ms"),
        ),
    ]


def scenario_latency(b: Bench) -> list[Row]:
    n = b.sizes.latency_runs
    ensure_app(b, "echo", MODELS / "echo")
    ensure_app(b, "shell-echo", MODELS / "shell-echo")
    py_orch, py_bare = latency_pair(b, "echo", [b.python, "main.py"], MODELS / "echo", n)
    sh_orch, sh_bare = latency_pair(b, "shell-echo", ["./main"], MODELS / "shell-echo", n)
    return [
        *latency_rows("python", py_orch, py_bare, "python main.py < input > output"),
        *latency_rows("binary", sh_orch, sh_bare, "./main < input > output"),
    ]
