"""Experiments and input sets: the list, starting a batch, one experiment's comparison.

The list also names the app's switchback and shadow tests; their pages are in
``online_tests``.

The numbers come from the same ``summarize`` and ``evaluate`` the CLI, the API and the
HTML report use; this page only lays them out, with the metric distributions as
interactive box plots (Plotly, served by the daemon).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import anyio
from fastapi import Request
from fastapi.responses import Response

from orchestrator.console.guard import read_form
from orchestrator.console.pages.base import (
    app_url,
    fields,
    pages_router,
    see_other,
    state,
)
from orchestrator.console.pages.run_actions import ask_first, asking_cancel
from orchestrator.console.render import page
from orchestrator.errors import Invalid, OrchError
from orchestrator.experiments.acceptance import AcceptanceView
from orchestrator.experiments.batch import BatchRequest
from orchestrator.experiments.gate import GateResult, evaluate
from orchestrator.experiments.paired import TIMING_NOISE
from orchestrator.experiments.summary import (
    RESULT_VALUE,
    RunFacts,
    Summary,
    metric_order,
    run_metrics,
)
from orchestrator.models import ExperimentStatus

router = pages_router()


class Bounds(NamedTuple):
    """A number field's range and default, for its template (``min``/``max``) and handler."""

    low: int
    high: int
    default: int


SET_RUNS = Bounds(low=1, high=1000, default=20)
"""The new input set form's "Runs" (how many recent runs it takes): the bounds its field
declares (``min``, ``max``) and the handler checks, one source for both."""
START_FIELDS = ("input_set_id", "baseline", "objective", "repetitions", "id", "name")
SET_FIELDS = ("instance_id", "maximum_runs", "id", "name")


@router.get("/apps/{app_id}/experiments")
async def experiments_page(request: Request, app_id: str) -> Response:
    return await _list(request, app_id)


async def _list(
    request: Request,
    app_id: str,
    status: int = 200,
    error: str = "",
    start: dict[str, Any] | None = None,
    new_set: dict[str, str] | None = None,
) -> Response:
    """The experiments page; ``start`` or ``new_set``: what was sent in that form, refused
    (with ``error``), shown again instead of the form's defaults."""
    svc = state(request).services
    app = await svc.apps.get(app_id)
    experiments = [
        (e, await svc.experiments.counts(app_id, e.id)) for e in await svc.experiments.list(app_id)
    ]
    verdicts = {
        test.id: verdict(await svc.acceptance.view(test))
        for test in await svc.acceptance.list(app_id)
    }
    instances = await svc.instances.list(app_id)
    defaults: dict[str, Any] = {"input_set_id": "", "baseline": app.default_instance_id or ""}
    defaults.update(objective="min", repetitions="1", id="", name="")
    defaults["instance_ids"] = [i.id for i in instances if i.id != "devint"]
    default_runs = str(SET_RUNS.default)
    return page(
        request,
        "experiments.html",
        status=status,
        address=app_url(app_id, "experiments") if error else "",
        app=app,
        experiments=experiments,
        verdicts=verdicts,
        input_sets=await svc.input_sets.list(app_id),
        instances=instances,
        switchback_tests=await svc.switchback_tests.list(app_id),
        # newest first, as the other lists here (the API lists shadow tests oldest first)
        shadow_tests=list(reversed(await svc.shadow_tests.list(app_id))),
        error=error,
        start=start or defaults,
        new_set=new_set or {**dict.fromkeys(SET_FIELDS, ""), "maximum_runs": default_runs},
        set_runs=SET_RUNS,
    )


@router.post("/apps/{app_id}/experiments")
async def start_experiment(request: Request, app_id: str) -> Response:
    svc = state(request).services
    form = await read_form(request)
    values: dict[str, Any] = fields(form, START_FIELDS)
    values["instance_ids"] = [str(v) for v in form.getlist("instance_ids") if str(v).strip()]
    try:
        exp = await svc.experiments.start(
            BatchRequest(
                app_id=app_id,
                experiment_id=values["id"] or None,
                name=values["name"] or None,
                input_set_id=values["input_set_id"] or None,
                instance_ids=values["instance_ids"],
                repetitions=whole_number(values["repetitions"] or "1", "repetitions"),
                baseline=values["baseline"] or None,
                objective=values["objective"] or "min",
            )
        )
    except OrchError as exc:
        return await _list(request, app_id, exc.status, exc.message, start=values)
    return see_other(app_url(app_id, "experiments", exp.id))


@router.post("/apps/{app_id}/input-sets")
async def create_input_set(request: Request, app_id: str) -> Response:
    svc = state(request).services
    values = fields(await read_form(request), SET_FIELDS)
    low, high = SET_RUNS.low, SET_RUNS.high
    try:
        maximum = whole_number(values["maximum_runs"] or str(SET_RUNS.default), "runs")
        if not low <= maximum <= high:
            raise Invalid(f"runs must be from {low} to {high}, not {maximum}")
        item = await svc.input_sets.create(
            app_id,
            values["id"] or None,
            values["name"] or None,
            instance_id=values["instance_id"] or None,
            maximum_runs=maximum,
        )
    except OrchError as exc:
        return await _list(request, app_id, exc.status, exc.message, new_set=values)
    return see_other(app_url(app_id, "input-sets", item.id))


def verdict(view: AcceptanceView | None) -> str:
    """An acceptance test's verdict as its badge says it: "passed", "failed", or "" while
    its experiment runs (as the CLI's ``experiment acceptance list``)."""
    if view is None or view.results is None:
        return ""
    return "passed" if view.results.get("passed") else "failed"


def whole_number(text: str, name: str) -> int:
    """``text`` as an int, or Invalid: digits only (``int`` would also take ``1_000`` or
    ``٣``), and few enough that no store or loop chokes on it before a bound is checked."""
    if not re.fullmatch(r"[+-]?[0-9]{1,9}", text):
        raise Invalid(f"{name} must be a whole number, not {text[:20]!r}")
    return int(text)


@router.get("/apps/{app_id}/input-sets/{set_id}")
async def input_set_page(request: Request, app_id: str, set_id: str) -> Response:
    svc = state(request).services
    item = await svc.input_sets.get(app_id, set_id)
    return page(
        request,
        "input_set.html",
        app=await svc.apps.get(app_id),
        input_set=item,
        inputs=await svc.input_sets.members(app_id, set_id),
    )


async def _experiment_context(request: Request, app_id: str, exp_id: str) -> dict[str, Any]:
    svc = state(request).services
    exp = await svc.experiments.get(app_id, exp_id)
    counts = await svc.experiments.counts(app_id, exp_id)
    facts, summary = await svc.analysis.overview(exp)
    done = sum(counts.get(s, 0) for s in ("succeeded", "failed", "canceled"))
    return {
        "app": await svc.apps.get(app_id),
        "exp": exp,
        "counts": counts,
        "done": done,
        "running": exp.status == ExperimentStatus.STARTED,
        "summary": summary,
        "charts": await anyio.to_thread.run_sync(charts, summary, facts),
        "facts": facts,
        "run_links": run_links(facts),
        "timing_noise": f"{TIMING_NOISE:.0%}",
    }


@router.get("/apps/{app_id}/experiments/{exp_id}")
async def experiment_page(request: Request, app_id: str, exp_id: str) -> Response:
    context = await _experiment_context(request, app_id, exp_id)
    expr = request.query_params.get("gate", "").strip()
    gate, gate_error = await anyio.to_thread.run_sync(
        gate_verdict, expr, context["summary"], context["facts"]
    )
    acceptance = await state(request).services.acceptance.find(app_id, exp_id)
    return page(
        request,
        "experiment.html",
        **context,
        gate_expr=expr,
        gate=gate,
        gate_error=gate_error,
        acceptance=acceptance,
        verdict=verdict(acceptance),
        asking_cancel=asking_cancel(request),
    )


def run_links(facts: list[RunFacts]) -> dict[tuple[str, str, str | None], list[str]]:
    """The runs behind each per-input value, by (target, input, option set): the succeeded
    runs reporting result.value (what the value is the mean of), by repetition."""
    found: dict[tuple[str, str, str | None], list[tuple[int, str]]] = {}
    for fact in facts:
        if fact.status == "succeeded" and RESULT_VALUE in run_metrics(fact):
            key = (fact.target, fact.input_id, fact.option_set)
            found.setdefault(key, []).append((fact.repetition, fact.run_id))
    return {key: [run_id for _, run_id in sorted(runs)] for key, runs in found.items()}


def gate_verdict(
    expr: str, summary: Summary, facts: list[RunFacts]
) -> tuple[GateResult | None, str]:
    """(the verdict, "") for a condition typed on the page, or (None, why not)."""
    if not expr:
        return None, ""
    if not summary.baseline:
        return None, "the gate compares against a baseline: this experiment has none"
    try:
        return evaluate(expr, facts, summary.baseline), ""
    except Invalid as exc:
        return None, exc.message


@router.get("/apps/{app_id}/experiments/{exp_id}/progress")
async def experiment_progress(request: Request, app_id: str, exp_id: str) -> Response:
    """The progress panel alone, polled while the experiment runs; a reload once it ends."""
    context = await _experiment_context(request, app_id, exp_id)
    response = page(request, "_progress.html", **context)
    if not context["running"]:
        response.headers["HX-Refresh"] = "true"
    return response


@router.post("/apps/{app_id}/experiments/{exp_id}/cancel")
async def cancel_experiment(request: Request, app_id: str, exp_id: str) -> Response:
    """Cancels the experiment and its unfinished runs, once confirmed in the page."""
    here = app_url(app_id, "experiments", exp_id)
    if question := await ask_first(request, here):
        return question
    await state(request).services.experiments.cancel(app_id, exp_id)
    return see_other(here)


def charts(summary: Summary, facts: list[RunFacts]) -> list[dict[str, Any]]:
    """One box plot per metric: a trace per target, every succeeded run as a point."""
    values: dict[str, dict[str, list[float]]] = {}
    for fact in facts:
        if fact.status != "succeeded":
            continue
        for metric, value in run_metrics(fact).items():
            values.setdefault(metric, {}).setdefault(fact.target, []).append(value)
    targets = [t.target for t in summary.targets]
    return [
        {
            "metric": metric,
            "figure": {
                "data": [
                    {
                        "type": "box",
                        "name": target,
                        "y": values[metric][target],
                        "boxpoints": "all",
                        "jitter": 0.3,
                        "pointpos": 0,
                    }
                    for target in targets
                    if target in values[metric]
                ],
                "layout": {"title": {"text": metric}, "showlegend": False, "height": 320},
            },
        }
        for metric in metric_order(values)
    ]
