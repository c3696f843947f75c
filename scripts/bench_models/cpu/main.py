"""CPU-bound model: reads {"iterations": n}, spends them on integer arithmetic, answers.

The benchmark picks n so that the loop takes ~40 ms of CPU on the machine it runs on
(the loop runs in a function, as the benchmark's calibration does: module-level
variables are dictionary lookups and would make each iteration slower). Standard
library only, one file: what a model costs beyond its own work is what the throughput
benchmark looks at.
"""

import json
import sys


def work(n: int) -> int:
    x = 1
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x


n = int(json.load(sys.stdin).get("iterations", 1_000_000))
json.dump({"iterations": n, "x": work(n)}, sys.stdout)
