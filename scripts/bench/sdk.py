"""The peer to beat: the vendor's local runner (``nextmv.local.Application``).

It runs in a child process (``--sdk-peer``) with its own ``$HOME``, since it keeps a
registry in ``$HOME/.nextmv``, and polls every millisecond; orch runs the same echo
model right after, in the same minute.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

from .common import MODELS, Bench, ensure_app
from .harness import ROOT
from .latency import latency_pair
from .results import Row, Target, median, ms, p90

PACKAGE = ROOT / "scripts" / "bench"


def sdk_peer_main(src: str, runs: int) -> None:
    """Child mode: time ``nextmv.local.Application`` runs of ``src``; print seconds as JSON."""
    from nextmv.local import Application
    from nextmv.polling import PollingOptions

    app = Application(src=src)
    poll = PollingOptions(initial_delay=0, delay=0.001, backoff=0, jitter=0, max_delay=0.001)
    times, torn = [], 0
    for i in range(runs):
        doc = {"bench": "sdk", "n": i}
        start = time.perf_counter()
        run_id = app.new_run(input=doc)
        while True:
            try:
                res = app.run_result_with_polling(run_id, polling_options=poll)
                break
            except ValueError:
                # The runner rewrites <run>.json in place (open "w", json.dump): polled every
                # millisecond, it is sometimes read half-written. Read again, as a user would.
                torn += 1
        times.append(time.perf_counter() - start)
        if res.output != doc:
            raise SystemExit(f"unexpected output from the local runner: {res.output!r}")
    print(f"SDK local runner: {torn} torn reads of the run file retried", file=sys.stderr)
    print(json.dumps(times))


def scenario_sdk(b: Bench) -> list[Row]:
    src = b.tmp / "sdk-echo"
    shutil.copytree(MODELS / "echo", src, dirs_exist_ok=True)
    sdk_home = b.tmp / "sdk-home"  # the SDK keeps a registry in $HOME/.nextmv
    sdk_home.mkdir(exist_ok=True)
    runs, warm = b.sizes.sdk_runs, b.sizes.warmup_runs
    argv = [sys.executable, str(PACKAGE), "--sdk-peer", str(src), str(runs + warm)]
    env = {**os.environ, "HOME": str(sdk_home)}
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"the SDK's local runner failed:\n{out.stderr[-3000:]}")
    sys.stderr.write(out.stderr)
    sdk = json.loads(out.stdout.strip().splitlines()[-1])[warm:]
    ensure_app(b, "echo", MODELS / "echo")
    mine, _ = latency_pair(b, "echo", [b.python, "main.py"], MODELS / "echo", runs)
    peer = "nextmv.local.Application (SDK local runner)"
    beat = Target("ratio", "<", 1.0)
    return [
        Row(
            "latency python vs SDK local runner: median",
            ms(median(mine)),
            ms(median(sdk)),
            "ms",
            beat,
            peer,
        ),
        Row(
            "latency python vs SDK local runner: p90", ms(p90(mine)), ms(p90(sdk)), "ms", None, peer
        ),
    ]
