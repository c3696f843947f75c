"""A tiny model for acceptance tests whose output is set by its input and one option.

It reports ``result.value = input["value"] + offset`` and ``result.custom.gap = offset``,
so a control instance (offset 0) and a candidate (offset 2) differ by exactly 2 on every
input, and every statistic of either side can be computed by hand.
"""

from __future__ import annotations

MODEL = """\
import argparse, json, sys
parser = argparse.ArgumentParser()
parser.add_argument("-offset", type=float, default=0.0)
opts, _ = parser.parse_known_args()
value = json.load(sys.stdin)["value"] + opts.offset
stats = {"run": {"duration": 0.01}, "result": {"value": value, "custom": {"gap": opts.offset}}}
print(json.dumps({"solutions": [], "statistics": stats}))
"""
MANIFEST = """\
type: python
runtime: ghcr.io/nextmv-io/runtime/python:3.11
files:
  - main.py
configuration:
  options:
    items:
      - name: offset
        option_type: float
        default: 0.0
"""
CONTROL = [1.0, 2.0, 4.0, 8.0]
CANDIDATE = [3.0, 4.0, 6.0, 10.0]
