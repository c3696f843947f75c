"""Exact 0/1 knapsack: O(n * capacity) time, O(capacity) memory plus a choice table."""

from __future__ import annotations


def solve(values: list[int], weights: list[int], capacity: int) -> tuple[int, list[int]]:
    """Return (best value, indices of the chosen items)."""
    best = [0] * (capacity + 1)
    took = []
    for value, weight in zip(values, weights):
        row = bytearray(capacity + 1)
        for c in range(capacity, weight - 1, -1):
            candidate = best[c - weight] + value
            if candidate > best[c]:
                best[c] = candidate
                row[c] = 1
        took.append(row)
    chosen, c = [], capacity
    for i in range(len(values) - 1, -1, -1):
        if took[i][c]:
            chosen.append(i)
            c -= weights[i]
    return best[capacity], sorted(chosen)
