"""Acceptance tests through the real SDK, with verdicts checked against hand-computed numbers.

The model (``tests/acceptance_model.py``): control offset 0, candidate offset 2, inputs
1, 2, 4 and 8, so the control's values are [1, 2, 4, 8] and the candidate's [3, 4, 6, 10].
"""

from __future__ import annotations

import math

import pytest
import requests
from nextmv import cloud
from nextmv.cloud import (
    Comparison,
    Metric,
    MetricParams,
    MetricTolerance,
    MetricToleranceType,
    MetricType,
    StatisticType,
)
from nextmv.cloud.batch_experiment import BatchExperimentRun, to_runs
from nextmv.polling import PollingOptions

from tests.acceptance_model import CANDIDATE, CONTROL, MANIFEST, MODEL
from tests.compat.conftest import NewApp, Push
from tests.helpers import unique, write_app


def metric(
    field: str, op: Comparison, stat: StatisticType, tol: float = 0.0, kind: str = "absolute"
) -> Metric:
    return Metric(
        field=field,
        metric_type=MetricType.direct_comparison,
        params=MetricParams(
            operator=op, tolerance=MetricTolerance(type=MetricToleranceType(kind), value=tol)
        ),
        statistic=stat,
    )


def sgm(values: list[float]) -> float:
    """Shifted geometric mean, shift 10, written out."""
    product = 1.0
    for v in values:
        product *= v + 10
    return product ** (1 / len(values)) - 10


def both(
    app: cloud.Application, control: str, candidate: str, input_set: str
) -> list[BatchExperimentRun]:
    """Every input on both instances, as the SDK's own acceptance helper plans them."""
    return to_runs([candidate, control], app.input_set(input_set))


@pytest.fixture(scope="module")
def setup(
    new_app: NewApp, push: Push, tmp_path_factory: pytest.TempPathFactory
) -> tuple[cloud.Application, str, str, str]:
    """(app, control instance, candidate instance, input set of the four inputs)."""
    app = new_app("accept")
    push(app, write_app(tmp_path_factory.mktemp("m") / "offset", MODEL, MANIFEST))
    version = app.new_version(id=unique("v"))
    control, candidate = (
        app.new_instance(
            version_id=version.id,
            id=unique(name),
            configuration=cloud.InstanceConfiguration(options={"offset": offset}),
        ).id
        for name, offset in (("control", "0"), ("candidate", "2"))
    )
    polling = PollingOptions(initial_delay=0.05, delay=0.05, backoff=0, jitter=0, max_duration=60)
    run_ids = [app.new_run(input={"value": v}, instance_id=control) for v in CONTROL]
    for run_id in run_ids:
        app.run_result_with_polling(run_id, polling_options=polling)
    input_set = app.new_input_set(id=unique("is"), name="four", run_ids=run_ids)
    return app, control, candidate, input_set.id


def test_acceptance_test_lifecycle_and_verdicts(
    setup: tuple[cloud.Application, str, str, str], fast: PollingOptions
) -> None:
    app, control, candidate, input_set = setup
    metrics = [
        metric("result.value", Comparison.greater_than, StatisticType.mean),  # 5.75 > 3.75
        metric("result.value", Comparison.less_than, StatisticType.max, 1.0),  # 10 < 8+1: no
        metric(
            "result.value", Comparison.less_than_or_equal_to, StatisticType.p50, 1.0, "relative"
        ),
        metric("result.value", Comparison.equal_to, StatisticType.shifted_geometric_mean, 2.5),
        metric("result.value", Comparison.greater_than_or_equal_to, StatisticType.p25),
        metric("result.custom.gap", Comparison.not_equal_to, StatisticType.std),  # 0 vs 0: no
    ]
    test_id = unique("acc")
    done = app.new_acceptance_test_with_result(
        candidate_instance_id=candidate,
        baseline_instance_id=control,
        metrics=metrics,
        id=test_id,
        name="offset 2 vs 0",
        input_set_id=input_set,
        polling_options=fast,
    )
    assert done.id == test_id and done.experiment_id == test_id and done.status == "completed"
    assert done.control is not None and done.control.instance_id == control
    assert done.candidate is not None and done.candidate.instance_id == candidate
    assert done.results is not None and done.results.metric_results is not None
    verdicts = [r.passed for r in done.results.metric_results]
    assert verdicts == [True, False, True, True, True, False]
    assert done.results.passed is False

    first = done.results.metric_results[0].statistics
    for side, values in ((first.control, CONTROL), (first.candidate, CANDIDATE)):
        summary = side.distribution_summary_statistics
        mean = sum(values) / 4
        assert summary.count == 4 and side.number_of_runs_total == 4
        assert (summary.min, summary.max, summary.mean) == (values[0], values[-1], mean)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / 3)
        assert summary.std == pytest.approx(std)
        assert summary.shifted_geometric_mean == pytest.approx(sgm(values))
        assert summary.shift_parameter == 10
        pct = side.distribution_percentiles
        # linear interpolation on 4 sorted values: p25 sits at 0.75, p50 at 1.5, p90 at 2.7
        assert pct.p25 == pytest.approx(values[0] + 0.75 * (values[1] - values[0]))
        assert pct.p50 == pytest.approx((values[1] + values[2]) / 2)
        assert pct.p90 == pytest.approx(values[2] + 0.7 * (values[3] - values[2]))
    assert sgm(CANDIDATE) - sgm(CONTROL) == pytest.approx(2.0, abs=0.5)  # so eq 2.5 holds

    got = app.acceptance_test(test_id)
    assert got.results is not None and got.results.passed is False
    assert got.metrics is not None and got.metrics[2].params.tolerance.type == "relative"
    assert test_id in [t.id for t in app.list_acceptance_tests()]
    assert test_id in [t.id for t in app.list_acceptance_tests(no_pagination=True)]
    renamed = app.update_acceptance_test(test_id, name="renamed", description="why")
    assert (renamed.name, renamed.description) == ("renamed", "why")
    app.delete_acceptance_test(test_id)
    for gone in (lambda: app.acceptance_test(test_id), lambda: app.batch_experiment(test_id)):
        with pytest.raises(requests.HTTPError) as err:
            gone()
        assert err.value.response is not None and err.value.response.status_code == 404


def test_acceptance_test_on_an_existing_batch_passes(
    setup: tuple[cloud.Application, str, str, str], fast: PollingOptions
) -> None:
    app, control, candidate, input_set = setup
    batch_id = app.new_batch_experiment(
        id=unique("acc"), name="existing", runs=both(app, control, candidate, input_set)
    )
    app.new_acceptance_test(
        candidate_instance_id=candidate,
        baseline_instance_id=control,
        metrics=[
            metric("result.value", Comparison.less_than, StatisticType.mean, 2.5),  # 5.75 < 6.25
            {
                "field": "run.duration",
                "metric_type": "direct-comparison",
                "params": {"operator": "eq", "tolerance": {"type": "absolute", "value": 0}},
                "statistic": "p99",
            },
        ],
        id=batch_id,
    )
    done = app.acceptance_test_with_polling(batch_id, polling_options=fast)
    assert done.results is not None and done.results.passed is True
    assert done.results.error is None
    app.delete_acceptance_test(batch_id)


def test_acceptance_test_refuses_bad_requests_and_reports_missing_metrics(
    setup: tuple[cloud.Application, str, str, str], fast: PollingOptions
) -> None:
    app, control, candidate, input_set = setup
    with pytest.raises(ValueError, match="does not exist"):  # the SDK's own check, on our 404
        app.new_acceptance_test(candidate, control, [metric("x", Comparison.equal_to, "min")])
    bad = {"field": "result.value", "params": {"operator": "gte"}, "statistic": "mean"}
    batch_id = app.new_batch_experiment(
        id=unique("acc"), name="bad", runs=both(app, control, candidate, input_set)
    )
    with pytest.raises(requests.HTTPError) as err:
        app.new_acceptance_test(candidate, control, [bad], id=batch_id)
    assert err.value.response is not None and err.value.response.status_code == 400
    assert "operator must be one of eq gt ge lt le ne" in err.value.response.json()["error"]
    missing = metric("result.nothing", Comparison.equal_to, StatisticType.mean)
    app.new_acceptance_test(candidate, control, [missing], id=batch_id)
    done = app.acceptance_test_with_polling(batch_id, polling_options=fast)
    assert done.results is not None and done.results.passed is False
    assert "result.nothing" in (done.results.error or "")
    app.delete_acceptance_test(batch_id)
