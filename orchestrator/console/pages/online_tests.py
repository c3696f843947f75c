"""Switchback and shadow tests: one page each, with Start and Stop.

The tests are made through the API, the CLI or the SDK; the console shows where one
stands and starts or stops it by calling the same service methods as ``PUT .../start``
and ``PUT .../stop``, so a test moves the same way whoever moves it. A refused move (a
test that is no longer a draft, a baseline already taken by another live test) is shown
on the test's page with the service's own message and status, as the experiment list
shows a refused experiment. The numbers are the API's: ``summary`` is what
``GET .../switchback/{id}/summary`` returns, the pairs are what ``.../shadow/{id}/runs``
links.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from orchestrator.console.guard import read_form
from orchestrator.console.pages.base import app_url, field, pages_router, see_other, state
from orchestrator.console.render import page
from orchestrator.errors import OrchError
from orchestrator.experiments.summary import (
    Distribution,
    TargetSummary,
    metric_order,
    relative_change,
)
from orchestrator.experiments.switchback_plan import moment, stamp, unit_at, utc_now
from orchestrator.models import Run
from orchestrator.shadow_models import ShadowLink, ShadowStatus, ShadowTest, StopIntent
from orchestrator.switchback_models import Arm, SwitchbackStatus, SwitchbackTest

router = pages_router()
Page = Callable[[Request, str, str, int, str], Awaitable[Response]]
"""A test's page, rendered with a status and an error (``""``: none)."""


# --- switchback tests -------------------------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    """One unit of a drawn plan, with its times (UTC, as stored) and whether it runs now."""

    index: int
    arm: str
    instance_id: str
    start: str
    end: str
    now: bool


@dataclass(frozen=True)
class MetricRow:
    """A metric's distribution on each arm and the change of the mean (candidate vs baseline)."""

    metric: str
    baseline: Distribution | None
    candidate: Distribution | None
    change: float | None


def plan_units(t: SwitchbackTest) -> list[Unit]:
    """The drawn plan unit by unit (empty until the test starts, when it is drawn); the
    unit running now is marked only while the test runs, as the CLI marks it."""
    if t.plan is None:
        return []
    begin, length = moment(t.plan.start), timedelta(minutes=t.plan.unit_minutes)
    current = unit_at(t.plan, utc_now()) if t.status == SwitchbackStatus.STARTED else None
    return [
        Unit(
            index=i,
            arm=arm.value,
            instance_id=t.instance_of(arm),
            start=stamp(begin + i * length),
            end=stamp(begin + (i + 1) * length),
            now=i == current,
        )
        for i, arm in enumerate(t.plan.arms)
    ]


def metric_rows(arms: list[tuple[Arm, TargetSummary]]) -> list[MetricRow]:
    """Every metric either arm reports, built-in ones first; the change is the relative
    change of the means, left out when an arm has no value or the baseline's mean is 0."""
    by_arm = {arm: target.metrics for arm, target in arms}
    base, cand = by_arm.get(Arm.BASELINE, {}), by_arm.get(Arm.CANDIDATE, {})
    rows = []
    for metric in metric_order([*base, *cand]):
        b, c = base.get(metric), cand.get(metric)
        change = relative_change(b.mean, c.mean) if b is not None and c is not None else None
        rows.append(MetricRow(metric, b, c, change))
    return rows


async def _switchback(
    request: Request, app_id: str, test_id: str, status: int = 200, error: str = ""
) -> Response:
    svc = state(request).services
    test = await svc.switchback_tests.get(app_id, test_id)
    arms = await svc.switchback_tests.summary(app_id, test_id)
    return page(
        request,
        "switchback_test.html",
        status=status,
        app=await svc.apps.get(app_id),
        test=test,
        units=plan_units(test),
        runs=await svc.switchback_tests.runs(app_id, test_id),
        arms=arms,
        metrics=metric_rows(arms),
        live=switchback_live(test),
        error=error,
    )


def switchback_live(t: SwitchbackTest) -> bool:
    """Whether the page keeps itself current: while the test routes runs and its "now"
    unit moves, or while it waits for its scheduled start."""
    return t.status == SwitchbackStatus.STARTED or (
        t.status == SwitchbackStatus.DRAFT and t.scheduled_start is not None
    )


@router.get("/apps/{app_id}/switchback-tests/{test_id}")
async def switchback_page(request: Request, app_id: str, test_id: str) -> Response:
    return await _switchback(request, app_id, test_id)


@router.post("/apps/{app_id}/switchback-tests/{test_id}/start")
async def start_switchback(request: Request, app_id: str, test_id: str) -> Response:
    move = state(request).services.switchback_tests.start(app_id, test_id)
    return await _moved(request, app_id, test_id, "switchback-tests", move, _switchback)


@router.post("/apps/{app_id}/switchback-tests/{test_id}/stop")
async def stop_switchback(request: Request, app_id: str, test_id: str) -> Response:
    intent = field(await read_form(request), "intent") or "complete"
    move = state(request).services.switchback_tests.stop(app_id, test_id, intent)
    return await _moved(request, app_id, test_id, "switchback-tests", move, _switchback)


# --- shadow tests -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Shadow:
    """One candidate of a shadowed baseline run: the run it made (``None``: not made, see
    ``link.error``, or deleted since)."""

    link: ShadowLink
    run: Run | None


@dataclass(frozen=True)
class Pair:
    """A baseline run the test shadowed (``None``: deleted since) and its candidates."""

    baseline_run_id: str
    baseline: Run | None
    shadows: list[Shadow]


def pairs(runs: list[Run], links: list[ShadowLink]) -> list[Pair]:
    """Each shadowed baseline run with the candidate runs it triggered, oldest first (the
    order the links were written in), as the CLI prints them."""
    by_id = {r.id: r for r in runs}
    grouped: dict[str, list[Shadow]] = {}
    for link in links:
        made = by_id.get(link.candidate_run_id) if link.candidate_run_id else None
        grouped.setdefault(link.baseline_run_id, []).append(Shadow(link, made))
    return [Pair(b, by_id.get(b), shadows) for b, shadows in grouped.items()]


def result_value(run: Run | None) -> Any:
    """``statistics.result.value``, what the API's shadow runs call ``result_value``."""
    result = ((run.statistics if run is not None else None) or {}).get("result")
    return result.get("value") if isinstance(result, dict) else None


async def _shadow(
    request: Request, app_id: str, test_id: str, status: int = 200, error: str = ""
) -> Response:
    svc = state(request).services
    view = await svc.shadow_tests.view(app_id, test_id)
    return page(
        request,
        "shadow_test.html",
        status=status,
        app=await svc.apps.get(app_id),
        test=view.test,
        started=view.test.status == ShadowStatus.STARTED,
        pairs=pairs(view.runs, view.links),
        result_value=result_value,
        live=shadow_live(view.test),
        error=error,
    )


def shadow_live(t: ShadowTest) -> bool:
    """Whether the page keeps itself current: while the test shadows runs, or while it
    waits for its start time."""
    return t.status == ShadowStatus.STARTED or (
        t.status == ShadowStatus.DRAFT and t.start_time is not None
    )


@router.get("/apps/{app_id}/shadow-tests/{test_id}")
async def shadow_page(request: Request, app_id: str, test_id: str) -> Response:
    return await _shadow(request, app_id, test_id)


@router.post("/apps/{app_id}/shadow-tests/{test_id}/start")
async def start_shadow(request: Request, app_id: str, test_id: str) -> Response:
    move = state(request).services.shadow_tests.start(app_id, test_id)
    return await _moved(request, app_id, test_id, "shadow-tests", move, _shadow)


@router.post("/apps/{app_id}/shadow-tests/{test_id}/stop")
async def stop_shadow(request: Request, app_id: str, test_id: str) -> Response:
    given = field(await read_form(request), "intent") or StopIntent.COMPLETE.value
    try:
        intent = StopIntent(given)
    except ValueError:
        why = f"intent must be one of {', '.join(StopIntent)}, got {given!r}"
        return await _shadow(request, app_id, test_id, 400, why)
    move = state(request).services.shadow_tests.stop(app_id, test_id, intent)
    return await _moved(request, app_id, test_id, "shadow-tests", move, _shadow)


async def _moved(
    request: Request, app_id: str, test_id: str, kind: str, move: Awaitable[object], page: Page
) -> Response:
    """A test's Start or Stop (``move``, the service's own): back to the test's page, or
    that page with the service's refusal (its status and message) when it refused."""
    try:
        await move
    except OrchError as exc:
        return await page(request, app_id, test_id, exc.status, exc.message)
    return see_other(app_url(app_id, kind, test_id))
