"""Fair comparisons, in process: the paired interval, its verdict, and the queue order."""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter

import pytest

from orchestrator.console.render import ENV
from orchestrator.errors import Invalid
from orchestrator.experiments.paired import (
    TIMING_NOISE,
    PairedChange,
    difference_change,
    mean_interval,
    pair_values,
    ratio_change,
    t_quantile,
)
from orchestrator.experiments.queue_order import SEED_MAX, check_seed, draw_seed, fair_order
from orchestrator.experiments.report import render_html
from orchestrator.experiments.summary import RunFacts, summarize

# Two-sided 95 % quantiles of Student's t, from any printed table.
T_TABLE = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 9: 2.262, 29: 2.045, 59: 2.001, 120: 1.980}


@pytest.mark.parametrize(("df", "expected"), sorted(T_TABLE.items()))
def test_t_quantile_matches_the_table(df: int, expected: float) -> None:
    assert t_quantile(df) == pytest.approx(expected, abs=5e-4)


def test_t_quantile_far_out_is_the_normal_one() -> None:
    assert t_quantile(100_000) == pytest.approx(1.95996, abs=1e-4)
    with pytest.raises(ValueError):
        t_quantile(0)


def test_mean_interval_by_hand() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]  # mean 3, sd sqrt(2.5), n 5, t(4) 2.776
    mean, low, high = mean_interval(values)
    half = 2.7764 * math.sqrt(2.5) / math.sqrt(5)
    assert mean == 3.0
    assert (low, high) == (pytest.approx(3 - half, abs=1e-3), pytest.approx(3 + half, abs=1e-3))
    assert mean_interval([7.0]) == (7.0, None, None)


def test_ratio_change_is_geometric_with_its_interval() -> None:
    pairs = [(1.0, 1.3), (2.0, 2.7), (0.5, 0.64), (1.5, 1.92)]
    change = ratio_change(pairs)
    logs = [math.log(c / b) for b, c in pairs]
    assert change.pairs == 4
    assert change.mean_relative_change == pytest.approx(math.exp(statistics.fmean(logs)) - 1)
    assert change.low is not None and change.high is not None
    assert change.low < (change.mean_relative_change or 0) < change.high
    assert change.significant  # ~+30 % with a tight spread


def test_identical_timings_are_no_difference() -> None:
    same = ratio_change([(1.0, 1.0)] * 10)
    assert (same.mean_relative_change, same.low, same.high, same.significant) == (0, 0, 0, False)


def test_a_change_inside_the_noise_floor_is_not_significant() -> None:
    small = ratio_change([(1.0, 1.03), (1.0, 1.031), (1.0, 1.029)])  # tight, but only +3 %
    assert small.low is not None and small.low > 0
    assert not small.significant
    assert ratio_change([(1.0, 1.03)] * 3, floor=0.0).significant
    assert TIMING_NOISE == 0.05


def test_a_wide_interval_is_not_significant_even_with_a_big_mean() -> None:
    noisy = ratio_change([(1.0, 2.0), (1.0, 0.6), (1.0, 1.9), (1.0, 0.7)])
    assert noisy.low is not None and noisy.low < 0 < (noisy.high or 0)
    assert not noisy.significant


def test_one_pair_or_none_has_no_interval() -> None:
    one = ratio_change([(1.0, 2.0)])
    assert (one.pairs, one.low, one.high, one.significant) == (1, None, None, False)
    assert ratio_change([(0.0, 1.0)]).pairs == 0  # no log of 0
    assert difference_change([]).mean_relative_change is None


def test_difference_change_has_no_floor() -> None:
    assert difference_change([-0.01, -0.011, -0.012]).significant
    assert not difference_change([-0.01, 0.012, 0.0]).significant


def test_pair_values_averages_each_side_and_drops_the_unmatched() -> None:
    seen = [("a", False, 1.0), ("a", False, 3.0), ("a", True, 4.0), ("b", True, 9.0)]
    assert pair_values(seen) == [(2.0, 4.0)]


def _facts(target: str, rep: int, input_id: str, ms: float) -> RunFacts:
    return RunFacts(
        run_id=f"{target}-{input_id}-{rep}",
        target=target,
        input_id=input_id,
        input_name=input_id,
        option_set=None,
        repetition=rep,
        status="succeeded",
        error="",
        failure_kind=None,
        statistics={"result": {"value": 1}},
        duration_ms=ms,
        peak_memory_mb=None,
    )


def test_summary_pairs_timing_by_repetition() -> None:
    """Repetition 0 ran in a slow minute for both targets: pairing by repetition cancels it."""
    facts = []
    for i in range(5):
        facts += [_facts("a", 0, f"in-{i}", 200), _facts("b", 0, f"in-{i}", 260 + i)]
        facts += [_facts("a", 1, f"in-{i}", 100), _facts("b", 1, f"in-{i}", 130 + i)]
    wall = summarize(facts, baseline="a").comparisons[0].timing["wall_time"]
    assert wall.pairs == 10 and wall.significant
    assert wall.mean_relative_change == pytest.approx(0.32, abs=0.02)


def _plan(inputs: int, reps: int, targets: tuple[str, ...]) -> list[tuple[str, int, str]]:
    return [(f"in-{i}", r, t) for i in range(inputs) for r in range(reps) for t in targets]


def _group(item: tuple[str, int, str]) -> tuple[str, int]:
    return item[0], item[1]


def test_fair_order_is_a_function_of_the_seed() -> None:
    plan = _plan(20, 3, ("a", "b"))
    assert fair_order(plan, _group, 7) == fair_order(plan, _group, 7)
    assert fair_order(plan, _group, 7) != fair_order(plan, _group, 8)
    assert sorted(fair_order(plan, _group, 7)) == sorted(plan)


def test_fair_order_keeps_groups_whole_with_every_target_once() -> None:
    targets = ("a", "b", "c")
    order = fair_order(_plan(10, 2, targets), _group, 123)
    for start in range(0, len(order), len(targets)):
        chunk = order[start : start + len(targets)]
        assert len({_group(item) for item in chunk}) == 1
        assert sorted(item[2] for item in chunk) == sorted(targets)


def test_fair_order_shuffles_groups_and_rotates_who_goes_first() -> None:
    order = fair_order(_plan(20, 3, ("a", "b")), _group, 42)
    groups = [_group(item) for item in order[::2]]
    assert groups != sorted(groups)
    firsts = Counter(item[2] for item in order[::2])
    assert firsts["a"] == firsts["b"] == 30


def test_seeds() -> None:
    assert 0 <= draw_seed() <= SEED_MAX
    assert check_seed(SEED_MAX) == SEED_MAX
    with pytest.raises(Invalid):
        check_seed(-1)
    with pytest.raises(Invalid):
        check_seed(SEED_MAX + 1)


def _ab_facts(slowdown: float, noise: float = 0.0) -> list[RunFacts]:
    facts = []
    for i in range(10):
        for rep in range(2):
            wobble = 1 + noise * (1 if (i + rep) % 2 else -1)
            facts += [
                _facts("a", rep, f"in-{i}", 100 * wobble),
                _facts("b", rep, f"in-{i}", 100 * slowdown / wobble),
            ]
    return facts


def test_report_colours_only_a_significant_change() -> None:
    facts = _ab_facts(1.3, noise=0.02)
    page = render_html(summarize(facts, baseline="a"), facts, title="ab")
    cell = re.search(r'<td class="(\w+)" data-significant="yes">\+(\d+)\.\d\d%', page)
    assert cell is not None and cell.group(1) == "bad" and 28 <= int(cell.group(2)) <= 32
    assert "95% interval" in page and "&plusmn;5%" in page


def test_report_says_no_significant_difference_without_colour() -> None:
    facts = _ab_facts(1.0, noise=0.3)
    page = render_html(summarize(facts, baseline="a"), facts, title="aa")
    cells = re.findall(r'<td class="(\w+)" data-significant="(\w+)">([^<]*)', page)
    timing = [c for c in cells if c[2] == "no significant difference"]
    assert len(timing) == 2  # wall_time; result.value is identical: 0 % with no spread
    assert all(tone == "tie" and flag == "no" for tone, flag, _ in cells)
    assert 'class="good"' not in page.split("Against baseline")[1].split("<details")[0]


def test_console_shows_a_verdict_only_for_a_significant_change() -> None:
    paired = ENV.get_template("_paired.html").module.paired  # type: ignore[attr-defined]
    slower = str(paired(PairedChange(60, 0.2, 0.1, 0.3, True), True, "faster", "slower"))
    assert 'class="badge loss"' in slower and ">slower<" in slower
    assert "+20.00 %" in slower and "[+10.00 %, +30.00 %]" in slower
    better = str(paired(PairedChange(10, 0.2, 0.1, 0.3, True), False, "better", "worse"))
    assert 'class="badge win"' in better and ">better<" in better  # higher is better
    same = str(paired(PairedChange(60, 0.02, -0.05, 0.09, False), True, "faster", "slower"))
    assert "no significant difference (+2.00 % [-5.00 %, +9.00 %])" in same
    assert "badge" not in same
    assert str(paired(PairedChange(0, None, None, None, False), True, "a", "b")).strip() == "-"
