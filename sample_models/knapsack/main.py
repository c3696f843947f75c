"""Knapsack decision model: JSON on stdin, nextmv-shaped JSON on stdout, logs on stderr."""

from __future__ import annotations

import argparse
import json
import sys
import time

from knapsack.solver import solve


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prefix_chars="-")
    parser.add_argument("-duration", type=float, default=5.0)
    parser.add_argument("-scale", type=int, default=1)
    parser.add_argument("-sleep", type=float, default=0.0)
    known, _unknown = parser.parse_known_args()  # options we do not know pass through
    return known


def main() -> None:
    start = time.time()
    opts = options()
    data = json.load(sys.stdin)
    items = data["items"]
    # Scaling rounds weights up and the capacity down: faster, never infeasible, maybe worse.
    capacity = int(data["weight_capacity"]) // opts.scale
    weights = [-(-int(item["weight"]) // opts.scale) for item in items]
    values = [int(item["value"]) for item in items]
    print(f"solving knapsack: {len(items)} items, capacity {capacity}", file=sys.stderr)
    if opts.sleep:
        time.sleep(opts.sleep)
    value, chosen = solve(values, weights, capacity)
    picked = [items[i] for i in chosen]
    weight = sum(int(item["weight"]) for item in picked)
    elapsed = time.time() - start
    print(f"best value {value} with {len(picked)} items", file=sys.stderr)
    json.dump(
        {
            "options": vars(opts),
            "solutions": [{"items": picked, "value": value, "weight": weight}],
            "statistics": {
                "schema": "v1",
                "run": {"duration": elapsed},
                "result": {
                    "duration": elapsed,
                    "value": value,
                    "custom": {"items_selected": len(picked), "weight_used": weight},
                },
            },
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
