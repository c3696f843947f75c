"""Large input: 1 GiB through the upload URL into a model counting stdin bytes, MiB/s
from the start of the upload to the result, against ``cat file | python count.py``; the
daemon's peak memory growth meanwhile; and the disk's own write speed, the ceiling."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from .common import MODELS, USER_ENV, Bench, ensure_app, result, submit, upload
from .harness import MIB
from .results import Row, Target, median
from .state import RssSampler


def make_large_file(path: Path, mib: int) -> None:
    if path.exists() and path.stat().st_size == mib * MIB:
        return
    line = b"orch bench: a large text input, read by the model in 1 MiB chunks.\n"
    block = (line * (MIB // len(line) + 1))[:MIB]
    with path.open("wb") as fh:
        for _ in range(mib):
            fh.write(block)


def large_via_orch(b: Bench, path: Path) -> tuple[float, float]:
    """Seconds from the start of the upload to the result; the daemon's peak RSS growth (MiB)."""
    size = path.stat().st_size
    before = b.daemon.rss_mib()
    fmt = {"format": {"input": {"type": "text"}}}
    with RssSampler(b.daemon.process.pid) as sampler:
        start = time.perf_counter()
        with path.open("rb") as fh:
            upload_id = upload(b.api, "count", fh)
        run_id = submit(b.api, "count", {"upload_id": upload_id, "configuration": fmt})
        body = result(b.api, "count", run_id, wait=300)
        took = time.perf_counter() - start
    if body.get("output") != {"bytes": size}:
        raise RuntimeError(f"count model read {body.get('output')!r}, expected {size} bytes")
    return took, sampler.peak / MIB - before


def large_via_cat(path: Path, python: str) -> float:
    script = 'cat "$1" | "$0" main.py > /dev/null'
    start = time.perf_counter()
    subprocess.run(
        ["sh", "-c", script, python, str(path)],
        cwd=MODELS / "count",
        env=USER_ENV,
        check=True,
    )
    return time.perf_counter() - start


def disk_write_seconds(folder: Path, mib: int) -> float:
    """Seconds to write ``mib`` MiB to ``folder`` in 1 MiB writes, as an upload lands.

    Uploads stream to disk by design, so the disk's write speed is the ceiling of
    the large-input scenario; on some machines it is below half of ``cat``'s speed.
    """
    target = folder / "bench-disk-ceiling"
    block = b"x" * MIB
    start = time.perf_counter()
    with target.open("wb") as fh:
        for _ in range(mib):
            fh.write(block)
    took = time.perf_counter() - start
    target.unlink()
    return took


def scenario_large(b: Bench) -> list[Row]:
    mib = b.sizes.large_mib
    ensure_app(b, "count", MODELS / "count")
    path = b.tmp / f"large-{mib}MiB.txt"
    make_large_file(path, mib)
    runs, cat, disk = [], [], []
    for _ in range(b.sizes.large_reps):  # interleaved, so both sides see the same host
        runs.append(large_via_orch(b, path))
        cat.append(large_via_cat(path, b.python))
        disk.append(disk_write_seconds(b.home / "uploads", mib))
    orch_rate = mib / median([r[0] for r in runs])
    return [
        Row(
            f"large input {mib} MiB: vs disk write ceiling",
            orch_rate,
            mib / median(disk),
            "MiB/s",
            None,
            f"writing {mib} MiB to the daemon's disk (what an upload must do at least)",
        ),
        Row(
            f"large input {mib} MiB: throughput",
            orch_rate,
            mib / median(cat),
            "MiB/s",
            Target("ratio", ">=", 0.5),
            "cat file | python count.py",
        ),
        Row(
            f"large input {mib} MiB: daemon RSS growth",
            max(r[1] for r in runs),
            None,
            "MiB",
            Target("orch", "<=", 64, "MiB"),
        ),
    ]
