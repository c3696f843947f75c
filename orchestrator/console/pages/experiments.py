"""Experiments and input sets: the list, starting a batch, one experiment's comparison.

The list also names the app's switchback and shadow tests; their pages are in
``online_tests``.

The numbers come from the same ``summarize`` and ``evaluate`` the CLI, the API and the
HTML report use; this page only lays them out, with the metric distributions as
interactive box plots (Plotly, served by the daemon).
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import Response

from orchestrator.console.guard import read_form
from orchestrator.console.pages.base import app_url, field, pages_router, see_other, state
from orchestrator.console.render import page
from orchestrator.errors import Invalid, OrchError
from orchestrator.experiments.batch import BatchRequest
from orchestrator.experiments.gate import GateResult, evaluate
from orchestrator.experiments.paired import TIMING_NOISE
from orchestrator.experiments.summary import RunFacts, Summary, metric_order, run_metrics
from orchestrator.models import ExperimentStatus

router = pages_router()


@router.get("/apps/{app_id}/experiments")
async def experiments_page(request: Request, app_id: str) -> Response:
    return await _list(request, app_id)


async def _list(request: Request, app_id: str, status: int = 200, error: str = "") -> Response:
    svc = state(request).services
    app = await svc.apps.get(app_id)
    experiments = [
        (e, await svc.experiments.counts(app_id, e.id)) for e in await svc.experiments.list(app_id)
    ]
    return page(
        request,
        "experiments.html",
        status=status,
        app=app,
        experiments=experiments,
        input_sets=await svc.input_sets.list(app_id),
        instances=await svc.instances.list(app_id),
        switchback_tests=await svc.switchback_tests.list(app_id),
        # newest first, as the other lists here (the API lists shadow tests oldest first)
        shadow_tests=list(reversed(await svc.shadow_tests.list(app_id))),
        error=error,
    )


@router.post("/apps/{app_id}/experiments")
async def start_experiment(request: Request, app_id: str) -> Response:
    svc = state(request).services
    form = await read_form(request)
    try:
        repetitions = int(field(form, "repetitions") or "1")
    except ValueError:
        return await _list(request, app_id, 400, "repetitions must be a whole number")
    targets = [str(v) for v in form.getlist("instance_ids") if str(v).strip()]
    try:
        exp = await svc.experiments.start(
            BatchRequest(
                app_id=app_id,
                experiment_id=field(form, "id") or None,
                name=field(form, "name") or None,
                input_set_id=field(form, "input_set_id") or None,
                instance_ids=targets,
                repetitions=repetitions,
                baseline=field(form, "baseline") or None,
                objective=field(form, "objective") or "min",
            )
        )
    except OrchError as exc:
        return await _list(request, app_id, exc.status, exc.message)
    return see_other(app_url(app_id, "experiments", exp.id))


@router.post("/apps/{app_id}/input-sets")
async def create_input_set(request: Request, app_id: str) -> Response:
    svc = state(request).services
    form = await read_form(request)
    try:
        maximum = int(field(form, "maximum_runs") or "20")
        item = await svc.input_sets.create(
            app_id,
            field(form, "id") or None,
            field(form, "name") or None,
            instance_id=field(form, "instance_id") or None,
            maximum_runs=maximum,
        )
    except ValueError:
        return await _list(request, app_id, 400, "maximum runs must be a whole number")
    except OrchError as exc:
        return await _list(request, app_id, exc.status, exc.message)
    return see_other(app_url(app_id, "input-sets", item.id))


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
    )


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
    await state(request).services.experiments.cancel(app_id, exp_id)
    return see_other(app_url(app_id, "experiments", exp_id))


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
