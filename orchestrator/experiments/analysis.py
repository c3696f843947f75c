"""An experiment's numbers, computed off the event loop.

Summaries, gates, reports and run listings read every run of an experiment
(10,000 is ordinary) and then compute; on the loop that would hold every HTTP
answer and spawn for a few hundred milliseconds. Here the reading and the
computing both happen on the store's heavy-read thread (``store/heavy.py``),
and the loop only awaits the answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from orchestrator.errors import Invalid
from orchestrator.experiments.gate import GateResult, evaluate
from orchestrator.experiments.grouped_summaries import grouped_summaries, point_of
from orchestrator.experiments.report import render_html
from orchestrator.experiments.summary import (
    RunFacts,
    Summary,
    by_option_set,
    run_metrics,
    summarize,
)
from orchestrator.models import Experiment, Run, RunStatus
from orchestrator.store import Repos, Store


def target_of(run: Run) -> str:
    return run.instance_id or f"version:{run.version_id}"


async def experiment_runs(repos: Repos, app_id: str, exp_id: str) -> list[Run]:
    """An experiment's runs, oldest first."""
    runs = await repos.runs.list(app_id, experiment_id=exp_id, limit=10_000_000)
    return runs[::-1]


async def experiment_facts(repos: Repos, app_id: str, exp_id: str) -> list[RunFacts]:
    """The runs' facts in the order the experiment was asked for (``plan_order``)."""
    names = {i.id: i.name for i in await repos.inputs.list(app_id)}
    facts = [run_facts(r, names) for r in await experiment_runs(repos, app_id, exp_id)]
    return await plan_order(repos, app_id, exp_id, facts)


def run_facts(r: Run, names: dict[str, str]) -> RunFacts:
    """What the summary reads of a run (``names``: input names by id)."""
    return RunFacts(
        run_id=r.id,
        target=target_of(r),
        input_id=r.input_id or "",
        input_name=names.get(r.input_id or "", r.input_id or ""),
        option_set=r.option_set,
        repetition=r.repetition,
        status=r.status.value,
        error=r.error or "",
        failure_kind=r.failure.kind.value if r.failure else None,
        statistics=r.statistics,
        duration_ms=r.duration_ms,
        peak_memory_mb=r.peak_memory_mb,
        metrics=r.metrics,
        cpu_seconds=r.cpu_seconds,
    )


async def plan_order(
    repos: Repos, app_id: str, exp_id: str, facts: list[RunFacts]
) -> list[RunFacts]:
    """Input-set order, then option sets, repetitions and targets as given, instead of
    the shuffled queue order (``queue_order``): summaries, tables and gate messages list
    inputs and targets the way the user gave them, whatever the seed. What the experiment
    does not name (explicit runs) follows in order of creation."""
    exp = await repos.experiments.get(app_id, exp_id)
    if exp is None:
        return facts
    members = await repos.input_sets.get(app_id, exp.input_set_id) if exp.input_set_id else None
    inputs = _ranks(members.input_ids if members else [])
    option_sets = _ranks([None, *exp.option_sets])
    targets = _ranks(exp.targets)

    def rank(f: RunFacts) -> tuple[int, int, int, int]:
        return (
            inputs.setdefault(f.input_id, len(inputs)),
            option_sets.setdefault(f.option_set, len(option_sets)),
            f.repetition,
            targets.setdefault(f.target, len(targets)),
        )

    return sorted(facts, key=rank)


def _ranks(names: Iterable[str | None]) -> dict[str | None, int]:
    return {name: n for n, name in enumerate(dict.fromkeys(names))}


async def _compared(
    repos: Repos, exp: Experiment, baseline: str | None
) -> tuple[list[RunFacts], str | None]:
    """The facts and baseline a summary, gate or report compares: per (target, option set)
    when the experiment has option sets (``summary.by_option_set``).

    A ``baseline`` asked for now that is ambiguous is refused; the experiment's own may be
    one it was started with before option sets had rows of their own (a bare instance
    that ran several): it compared nothing then, and compares nothing now, rather than
    turning a stored experiment's page into an error."""
    facts = await experiment_facts(repos, exp.app_id, exp.id)
    if baseline:
        return by_option_set(facts, baseline)
    try:
        return by_option_set(facts, exp.baseline)
    except Invalid:
        return by_option_set(facts, None)


class ExperimentAnalysis:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def runs(self, exp: Experiment) -> list[Run]:
        return await self.store.heavy.call(lambda r: experiment_runs(r, exp.app_id, exp.id))

    async def facts(self, exp: Experiment) -> list[RunFacts]:
        return await self.store.heavy.call(lambda r: experiment_facts(r, exp.app_id, exp.id))

    async def summary(
        self, exp: Experiment, baseline: str | None = None, objective: str | None = None
    ) -> Summary:
        async def work(repos: Repos) -> Summary:
            facts, chosen = await _compared(repos, exp, baseline)
            return summarize(facts, chosen, objective or exp.objective)

        return await self.store.heavy.call(work)

    async def overview(self, exp: Experiment) -> tuple[list[RunFacts], Summary]:
        """The facts and the summary together (a page that shows both reads once), the
        facts named as the summary names them (``by_option_set``)."""

        async def work(repos: Repos) -> tuple[list[RunFacts], Summary]:
            facts, chosen = await _compared(repos, exp, None)
            return facts, summarize(facts, chosen, exp.objective)

        return await self.store.heavy.call(work)

    async def grouped(self, exp: Experiment) -> list[dict[str, Any]]:
        """``grouped_distributional_summaries`` of the experiment's succeeded runs."""

        async def work(repos: Repos) -> list[dict[str, Any]]:
            runs = {r.id: r for r in await experiment_runs(repos, exp.app_id, exp.id)}
            facts = [run_facts(r, {}) for r in runs.values()]
            facts = await plan_order(repos, exp.app_id, exp.id, facts)
            # groups come in order of first appearance: each option set's (a scenario's
            # configurations) together, in the order they were given
            sets = _ranks([None, *exp.option_sets])
            facts.sort(key=lambda f: sets.get(f.option_set, len(sets)))
            points = [
                point_of(runs[f.run_id], run_metrics(f))
                for f in facts
                if f.status == RunStatus.SUCCEEDED.value
            ]
            return grouped_summaries(points, exp.type)

        return await self.store.heavy.call(work)

    async def gate(self, exp: Experiment, expr: str, baseline: str) -> GateResult:
        async def work(repos: Repos) -> GateResult:
            facts, chosen = await _compared(repos, exp, baseline)
            return evaluate(expr, facts, chosen or baseline)

        return await self.store.heavy.call(work)

    async def report(self, exp: Experiment, baseline: str | None = None, verdict: str = "") -> str:
        async def work(repos: Repos) -> str:
            facts, chosen = await _compared(repos, exp, baseline)
            summary = summarize(facts, chosen, exp.objective)
            return render_html(summary, facts, f"{exp.name} ({exp.app_id})", verdict)

        return await self.store.heavy.call(work)
