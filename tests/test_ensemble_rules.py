"""The rule that picks an ensemble's winner, in process."""

from __future__ import annotations

from orchestrator.ensemble_models import EvaluationRule
from orchestrator.experiments.ensemble_rules import Candidate, choose, read_path


def _c(run_id: str, value: float | None, other: float | None = None) -> Candidate:
    result: dict[str, float] = {}
    if value is not None:
        result["value"] = value
    if other is not None:
        result["other"] = other
    return Candidate(run_id, {"result": result})


def _rule(
    objective: str, path: str = "$.result.value", tol: float = 0, kind: str = "absolute", i: int = 0
) -> EvaluationRule:
    return EvaluationRule(f"r{i}", path, objective, tol, kind, i)


def test_read_path() -> None:
    stats = {"result": {"value": 3, "flag": True, "custom": {"gap": 0.5}}}
    assert read_path(stats, "$.result.value") == 3.0
    assert read_path(stats, "$.result.custom.gap") == 0.5
    assert read_path(stats, "$.result.flag") is None
    assert read_path(stats, "$.result.missing") is None
    assert read_path(None, "$.result.value") is None


def test_minimize_and_maximize() -> None:
    runs = [_c("a", 5), _c("b", 2), _c("c", 9)]
    assert choose(runs, [_rule("minimize")]).winner == "b"
    assert choose(runs, [_rule("maximize")]).winner == "c"


def test_exact_tie_goes_to_the_earliest_child() -> None:
    assert choose([_c("a", 2), _c("b", 2)], [_rule("minimize")]).winner == "a"


def test_absolute_tolerance_hands_ties_to_the_next_rule() -> None:
    runs = [_c("a", 10, other=5), _c("b", 11, other=1), _c("c", 13, other=0)]
    rules = [_rule("minimize", tol=1, i=0), _rule("minimize", "$.result.other", i=1)]
    verdict = choose(runs, rules)
    assert verdict.winner == "b"  # c is 3 away from the best: out before rule 2
    assert verdict.values["c"] == {"r0": 13.0, "r1": 0.0}


def test_relative_tolerance_is_a_fraction_of_the_best() -> None:
    runs = [_c("a", 100, other=9), _c("b", 109, other=1), _c("c", 111, other=0)]
    rules = [_rule("minimize", tol=0.1, kind="relative", i=0)]
    rules.append(_rule("minimize", "$.result.other", i=1))
    assert choose(runs, rules).winner == "b"


def test_rules_apply_in_index_order_not_list_order() -> None:
    runs = [_c("a", 1, other=9), _c("b", 2, other=1)]
    rules = [_rule("minimize", "$.result.other", i=1), _rule("minimize", i=0)]
    assert choose(runs, rules).winner == "a"


def test_children_without_the_value_cannot_win() -> None:
    assert choose([_c("a", None), _c("b", 7)], [_rule("minimize")]).winner == "b"
    verdict = choose([_c("a", None)], [_rule("minimize")])
    assert verdict.winner is None and "$.result.value" in verdict.reason


def test_no_candidates() -> None:
    verdict = choose([], [_rule("minimize")])
    assert verdict.winner is None and verdict.reason == "no child run succeeded"


def test_a_tolerance_no_child_is_within_ends_the_choice_with_a_reason() -> None:
    """A NaN tolerance compares false with every gap: the choice used to raise IndexError
    in the daemon, leaving the ensemble run ``running`` for good (the API now refuses it:
    ``test_cli_ensembles``)."""
    verdict = choose([_c("a", 2), _c("b", 3)], [_rule("minimize", tol=float("nan"))])
    assert verdict.winner is None and "within the tolerance" in (verdict.reason or "")
