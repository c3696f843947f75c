"""The order an experiment's runs are queued in, so that timing comparisons are fair.

Runs of one (input, option set, repetition) form a *group*: its targets' runs stay next
to each other in the queue, so the load the machine has at that minute hits every target
alike and their paired difference cancels it (``paired``). Two more things keep a
systematic effect from posing as a difference:

- the groups are shuffled, so a slow phase of the machine (another job, a warming cache)
  does not always meet the same inputs or repetitions;
- within a group the targets rotate, one step per group from a random start, so each
  target goes first equally often (to within one group) rather than always the first.

Everything is drawn from ``random.Random(seed)``; the seed is stored with the experiment,
so its order can be reproduced and explained.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from orchestrator.errors import Invalid

T = TypeVar("T")
SEED_MAX = 2**32 - 1
"""Seeds are 0..2^32-1: exact in JSON numbers and SQLite integers alike."""


def draw_seed() -> int:
    return secrets.randbelow(SEED_MAX + 1)


def check_seed(seed: int) -> int:
    if not 0 <= seed <= SEED_MAX:
        raise Invalid(f"seed must be between 0 and {SEED_MAX}, got {seed}")
    return seed


def fair_order(items: Sequence[T], group_of: Callable[[T], Hashable], seed: int) -> list[T]:
    """``items`` grouped by ``group_of`` (groups kept whole), groups shuffled, and each
    group's members rotated one step further than the previous group's."""
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(group_of(item), []).append(item)
    rng = random.Random(seed)
    order = list(groups.values())
    rng.shuffle(order)
    start = rng.randrange(max(len(g) for g in order)) if order else 0
    out: list[T] = []
    for step, members in enumerate(order, start=start):
        turn = step % len(members)
        out += members[turn:] + members[:turn]
    return out
