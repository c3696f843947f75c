"""Push: a package renamed into the push directory until devint runs it, against the same
kind of package pushed over HTTP; and ``orch app push`` of the knapsack sample."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from orchestrator.packaging.build import build_package

from .common import KNAPSACK, MODELS, ORCH_CLI, Bench, call, ensure_app, http_push, wall
from .results import Row, Target, median, ms


def wait_executable(b: Bench, app: str, sha: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while call(b.api, "GET", f"/v1/applications/{app}/executable")["id"] != sha:
        if time.monotonic() > deadline:
            log = (b.home / "daemon.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"devint never pointed at {sha[:12]} within {timeout} s:\n{log}")
        time.sleep(0.002)


def versioned_package(src: Path, dest: Path, counter: int) -> tuple[Path, str]:
    """The echo model with a counter comment, so that every package has its own sha256."""
    main = src / "main.py"
    main.write_text((MODELS / "echo" / "main.py").read_text() + f"# push {counter}\n")
    built = build_package(src, dest)
    return built.path, built.sha256


def push_once(b: Bench, app: str, src: Path, i: int) -> tuple[float, float]:
    """One push through the push directory and one over HTTP; seconds each."""
    inbox = b.home / "push" / app
    inbox.mkdir(parents=True, exist_ok=True)
    part, sha = versioned_package(src, inbox / f"bench-{i}.tar.gz.part", 2 * i)
    final = inbox / f"bench-{i}.tar.gz"
    start = time.perf_counter()
    os.rename(part, final)
    wait_executable(b, app, sha)
    via_inbox = time.perf_counter() - start
    while final.exists():  # filed away into .done/: the inbox is idle again
        time.sleep(0.005)
    archive, sha = versioned_package(src, b.tmp / "packages" / f"http-{i}.tar.gz", 2 * i + 1)
    start = time.perf_counter()
    http_push(b.api, app, archive)
    via_http = time.perf_counter() - start
    wait_executable(b, app, sha, timeout=0)
    return via_inbox, via_http


def scenario_push(b: Bench) -> list[Row]:
    src = b.tmp / "push-src"
    shutil.copytree(MODELS / "echo", src, dirs_exist_ok=True)
    ensure_app(b, "push", src)
    pairs = [push_once(b, "push", src, i) for i in range(b.sizes.pushes)]
    call(b.api, "POST", "/v1/applications", 201, json_body={"id": "knapsack", "name": "knapsack"})
    push_cmd = [str(ORCH_CLI), "app", "push", "-a", "knapsack", "--app-dir", str(KNAPSACK)]
    cli = [wall([*push_cmd, "--home", str(b.home)]) for _ in range(b.sizes.cli_pushes)]
    floor = [wall([str(ORCH_CLI), "--version"]) for _ in range(b.sizes.cli_pushes)]
    return [
        Row(
            "push dir → devint: median",
            ms(median([p[0] for p in pairs])),
            ms(median([p[1] for p in pairs])),
            "ms",
            Target("orch", "<=", 100, "ms"),
            "the same kind of package pushed over HTTP (GET/PUT/PUT .../binary)",
        ),
        Row(
            "orch app push (knapsack): median",
            ms(median(cli)),
            ms(median(floor)),
            "ms",
            None,
            "orch --version (CLI start-up)",
        ),
    ]
