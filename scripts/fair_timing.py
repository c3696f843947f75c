"""Do orch's timing comparisons tell noise from a real change? A/A and A/B experiments.

A/A: the same executable on two instances, 20 inputs x 3 repetitions; the summary must
report no significant wall-time difference, every try. A/B: the same model with a
``-factor 1.3`` instance (30 % more CPU work per run, a busy loop of ~30 ms); the summary
must call it slower. Each try is a fresh experiment (a new queue-order seed)::

    .venv/bin/python scripts/fair_timing.py            # 10 A/A tries and 1 A/B, ~3 min
    .venv/bin/python scripts/fair_timing.py --aa 3 --ab 2

It starts a daemon of its own on a temporary home and prints one line per experiment,
the tally, and the load average before and after (the verdicts must hold on a busy
machine). ``tests/test_fair_timing.py`` runs a few of the same tries.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repo
from orchestrator.client.transport import Transport
from orchestrator.packaging.build import build_package
from scripts.bench.common import MODELS, call, http_push, upload
from scripts.bench.harness import Daemon

MODEL = MODELS / "scaled"
INPUTS = 20
REPETITIONS = 3
WORK_MS = 30.0
"""CPU time of one run's loop at factor 1 (the interpreter's start comes on top)."""
SLOWER = 1.3
"""The A/B instance's work against the others': what the script shows a summary resolves."""


METRICS = ("wall_time", "cpu_time")


@dataclass(frozen=True)
class Outcome:
    """The summary's timing comparisons of one experiment: metric -> PairedChange JSON."""

    experiment: str
    timing: dict[str, dict[str, Any]]
    seconds: float

    def significant(self, metric: str) -> bool:
        return bool(self.timing[metric]["significant"])

    def slower(self, metric: str) -> bool:
        return self.significant(metric) and self.timing[metric]["mean_relative_change"] > 0

    def line(self) -> str:
        def pct(v: float | None) -> str:
            return "-" if v is None else f"{v * 100:+.1f}%"

        parts = []
        for metric in METRICS:
            c = self.timing[metric]
            verdict = "SIGNIFICANT" if c["significant"] else "no significant difference"
            parts.append(
                f"{metric} {pct(c['mean_relative_change'])} [{pct(c['low'])}, {pct(c['high'])}]"
                f" {verdict}"
            )
        pairs = self.timing["wall_time"]["pairs"]
        return f"{self.experiment} ({pairs} pairs, {self.seconds:.0f} s): " + "; ".join(parts)


def iterations_for(ms: float) -> int:
    """Loop steps that take ``ms`` of CPU here (the model's loop, timed in this process)."""
    steps = 200_000
    start = time.process_time()
    x = 1
    for _ in range(steps):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    spent = max(time.process_time() - start, 1e-3)
    return int(steps * ms / 1000 / spent)


class FairTiming:
    """One app with the scaled model, three instances, and an input set of 20 inputs."""

    def __init__(self, api: Transport, app: str, tmp: Path, slower: float = SLOWER) -> None:
        """``slower``: the work of the "slower" instance against "same-1" and "same-2"."""
        self.api, self.app, self.tmp = api, app, tmp
        self.base = f"/v1/applications/{app}"
        self.instances = {"same-1": 1.0, "same-2": 1.0, "slower": slower}

    def setup(self, work_ms: float = WORK_MS) -> None:
        call(self.api, "POST", "/v1/applications", 201, json_body={"id": self.app, "name": "fair"})
        http_push(self.api, self.app, build_package(MODEL, self.tmp / "scaled.tar.gz").path)
        call(self.api, "POST", f"{self.base}/versions", 201, json_body={"id": "v1"})
        for name, factor in self.instances.items():
            options = {"factor": str(factor)}
            body = {"id": name, "version_id": "v1", "configuration": {"options": options}}
            call(self.api, "POST", f"{self.base}/instances", 201, json_body=body)
        iterations = iterations_for(work_ms)
        ids = []
        for i in range(INPUTS):
            # inputs differ a little, as real ones do: +-20 % of the work
            doc = {"iterations": int(iterations * (0.8 + 0.4 * i / (INPUTS - 1)))}
            body = {"id": f"in-{i}", "name": f"input {i}", "upload_id": self._upload(doc)}
            ids.append(call(self.api, "POST", f"{self.base}/inputs", 201, json_body=body)["id"])
        body = {"id": "twenty", "name": "twenty inputs", "input_ids": ids}
        call(self.api, "POST", f"{self.base}/experiments/inputsets", 201, json_body=body)

    def _upload(self, doc: dict[str, Any]) -> str:
        return upload(self.api, self.app, json.dumps(doc).encode())

    def compare(self, exp_id: str, baseline: str, candidate: str) -> Outcome:
        """Run the experiment to its end; its summary's timing verdicts."""
        return self.compare_many(exp_id, baseline, [candidate])[candidate]

    def compare_many(
        self, exp_id: str, baseline: str, candidates: list[str], timeout: float = 600
    ) -> dict[str, Outcome]:
        """One experiment, several candidates against one baseline (each is paired with it)."""
        body = {
            "id": exp_id,
            "input_set_id": "twenty",
            "instance_ids": [baseline, *candidates],
            "repetitions": REPETITIONS,
            "baseline": baseline,
        }
        start = time.monotonic()
        call(self.api, "POST", f"{self.base}/experiments/batch", 201, json_body=body)
        path = f"{self.base}/experiments/batch/{exp_id}"
        while call(self.api, "GET", f"{path}/metadata")["status"] == "started":
            if time.monotonic() - start > timeout:
                raise RuntimeError(f"{exp_id} did not end within {timeout} s")
            time.sleep(0.2)
        seconds = time.monotonic() - start
        summary = call(self.api, "GET", f"{path}/summary")
        return {
            c["target"]: Outcome(f"{exp_id}/{c['target']}", c["timing"], seconds)
            for c in summary["comparisons"]
        }


def _shown(outcome: Outcome) -> Outcome:
    print(outcome.line(), flush=True)
    return outcome


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aa", type=int, default=10, help="A/A experiments (default 10)")
    parser.add_argument("--ab", type=int, default=1, help="A/B experiments (default 1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="orch-fair-") as tmp:
        daemon = Daemon.start(Path(tmp) / "home")
        api = Transport(daemon.url, daemon.key, timeout=60)
        try:
            print(f"load average before: {_load()} ({os.cpu_count()} cores)", flush=True)
            fair = FairTiming(api, "fair", Path(tmp))
            fair.setup()
            aa = [_shown(fair.compare(f"aa-{i}", "same-1", "same-2")) for i in range(args.aa)]
            ab = [_shown(fair.compare(f"ab-{i}", "same-1", "slower")) for i in range(args.ab)]
            ok = True
            for metric in METRICS:
                quiet = sum(not o.significant(metric) for o in aa)
                caught = sum(o.slower(metric) for o in ab)
                print(f"{metric}: A/A no significant difference in {quiet} of {len(aa)};", end=" ")
                print(f"A/B ({SLOWER}x work) reported slower in {caught} of {len(ab)}")
                ok = ok and quiet == len(aa) and caught == len(ab)
            print(f"load average after: {_load()}")
            return 0 if ok else 1
        finally:
            api.close()
            daemon.stop()


if __name__ == "__main__":
    sys.exit(main())
