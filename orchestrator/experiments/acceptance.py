"""Acceptance tests: a candidate instance against a control, metric by metric.

An acceptance test is a view on the batch experiment with the same id (Nextmv's rule: the
SDK starts the experiment, then creates the test); its status is the experiment's, and
its results are computed from the experiment's runs when it ends (``acceptance_eval``).
Deleting the test deletes the experiment and its runs, as on the platform. Once a test is
made on it, the experiment's type is ``acceptance``: it is listed with the tests, not with
the batch experiments.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import Conflict, Invalid, NotFound
from orchestrator.experiments import acceptance_eval
from orchestrator.experiments.analysis import experiment_facts
from orchestrator.experiments.batch import ExperimentService
from orchestrator.ids import check_label, relabel, validate_child_id
from orchestrator.models import AcceptanceTest, Experiment, ExperimentStatus, ExperimentType
from orchestrator.registry.lookup import require_app
from orchestrator.store import Repos, Store


@dataclass
class AcceptanceRequest:
    app_id: str
    test_id: str
    control_instance_id: str
    candidate_instance_id: str
    metrics: list[Any]
    name: str | None = None
    description: str = ""


@dataclass(frozen=True)
class AcceptanceView:
    """A test with what it shows now: its experiment's status and, once ended, results."""

    test: AcceptanceTest
    status: ExperimentStatus
    results: dict[str, Any] | None


class AcceptanceService:
    def __init__(self, store: Store, experiments: ExperimentService) -> None:
        self.store, self.experiments = store, experiments

    async def create(self, req: AcceptanceRequest) -> AcceptanceView:
        test_id = validate_child_id(req.test_id, "acceptance test")
        check_label("acceptance test", req.name, req.description)
        criteria = acceptance_eval.parse_metrics(req.metrics)
        if req.control_instance_id == req.candidate_instance_id:
            raise Invalid("the candidate and the control must be different instances")
        exp = await self._experiment(req.app_id, test_id)
        if exp.type == ExperimentType.SCENARIO:
            raise Invalid(f"experiment {test_id!r} is a scenario test, not a batch experiment")
        for role, instance_id in (
            ("control", req.control_instance_id),
            ("candidate", req.candidate_instance_id),
        ):
            if instance_id not in exp.targets:
                raise Invalid(
                    f"the {role} instance {instance_id!r} has no runs in batch experiment "
                    f"{test_id!r} (its targets: {', '.join(exp.targets)})"
                )
        test = AcceptanceTest(
            id=test_id,
            app_id=req.app_id,
            name=req.name or test_id,
            description=req.description,
            control_instance_id=req.control_instance_id,
            control_version_id=await self._version_of(req.app_id, req.control_instance_id),
            candidate_instance_id=req.candidate_instance_id,
            candidate_version_id=await self._version_of(req.app_id, req.candidate_instance_id),
            metrics=[acceptance_eval.metric_dict(c) for c in criteria],
        )
        async with self.store.write() as w:
            if await w.acceptance.get(req.app_id, test_id) is not None:
                raise Conflict(f"acceptance test {test_id!r} already exists in app {req.app_id!r}")
            await w.acceptance.insert(test)
            # the test owns its experiment now: it leaves the batch list for the tests' own
            await w.experiments.set_type(req.app_id, test_id, ExperimentType.ACCEPTANCE)
            objective = acceptance_eval.objective_of(criteria)
            if objective is not None:  # its paired comparison ranks the way its metrics do
                await w.experiments.set_objective(req.app_id, test_id, objective)
        return await self.view(test)

    async def _experiment(self, app_id: str, test_id: str) -> Experiment:
        try:
            return await self.experiments.get(app_id, test_id)
        except NotFound:
            raise NotFound(
                f"batch experiment {test_id!r} not found in app {app_id!r}: an acceptance test "
                "is made on the batch experiment with its id (start that first)"
            ) from None

    async def _version_of(self, app_id: str, instance_id: str) -> str:
        instance = await self.store.read.instances.get(app_id, instance_id)
        return instance.version_id if instance is not None else ""

    async def get(self, app_id: str, test_id: str) -> AcceptanceTest:
        test = await self.store.read.acceptance.get(app_id, test_id)
        if test is None:
            await require_app(self.store.read, app_id)
            raise NotFound(f"acceptance test {test_id!r} not found in app {app_id!r}")
        return test

    async def find(self, app_id: str, test_id: str) -> AcceptanceView | None:
        """The test on the experiment ``test_id``, if it has one (for reports and pages)."""
        test = await self.store.read.acceptance.get(app_id, test_id)
        return None if test is None else await self.view(test)

    async def list(self, app_id: str) -> builtins.list[AcceptanceTest]:
        await require_app(self.store.read, app_id)
        return await self.store.read.acceptance.list(app_id)

    async def view(self, test: AcceptanceTest) -> AcceptanceView:
        exp = await self.experiments.get(test.app_id, test.id)
        if exp.status == ExperimentStatus.STARTED:
            return AcceptanceView(test, exp.status, None)

        async def work(repos: Repos) -> dict[str, Any] | None:
            facts = await experiment_facts(repos, test.app_id, test.id)
            return acceptance_eval.evaluate(test, exp.status, facts)

        return AcceptanceView(test, exp.status, await self.store.heavy.call(work))

    async def update(
        self, app_id: str, test_id: str, name: str | None, description: str | None
    ) -> AcceptanceView:
        test = await self.get(app_id, test_id)
        relabel("acceptance test", test, name, description)
        async with self.store.write() as w:
            await w.acceptance.update(test)
        return await self.view(test)

    async def delete(self, app_id: str, test_id: str) -> None:
        """The test and its batch experiment (canceled first if it still runs)."""
        await self.get(app_id, test_id)
        exp = await self.experiments.get(app_id, test_id)
        if exp.status == ExperimentStatus.STARTED:
            await self.experiments.cancel(app_id, test_id)
        await self.experiments.delete(app_id, test_id)
