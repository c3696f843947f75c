"""CPU-bound model for fair-timing checks: ``iterations`` x ``-factor`` steps of arithmetic.

No sleep and no I/O beyond stdin/stdout, so its wall time is its CPU work plus the
interpreter's start: a ``-factor 1.3`` instance is the same model made 30 % slower.
"""

import json
import sys
import time


def work(n: int) -> int:
    x = 1
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x


factor = float(sys.argv[sys.argv.index("-factor") + 1]) if "-factor" in sys.argv else 1.0
n = int(json.load(sys.stdin).get("iterations", 500_000) * factor)
start = time.perf_counter()
x = work(n)
seconds = time.perf_counter() - start
json.dump({"statistics": {"result": {"value": n}, "run": {"duration": seconds}}}, sys.stdout)
