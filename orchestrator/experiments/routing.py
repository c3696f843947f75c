"""The one place that decides where a run asked for through ``/runs`` goes.

The run service calls ``create`` for every user run: an ensemble run fans out
to its children; a run on the baseline of a running switchback test goes to the arm of
the current unit; any other run is made as asked (``plain``), then shadowed by the
started shadow tests it is a baseline of. Runs made here on an ensemble's or a test's
behalf go straight to the run service, so they trigger nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from orchestrator.experiments.ensemble_runs import EnsembleRuns
from orchestrator.experiments.shadow_runs import ShadowTrigger
from orchestrator.experiments.switchback import SwitchbackTests
from orchestrator.models import Run
from orchestrator.runs.service import RunRequest


class Router:
    def __init__(
        self, ensembles: EnsembleRuns, switchback: SwitchbackTests, shadows: ShadowTrigger
    ) -> None:
        self.ensembles, self.switchback, self.shadows = ensembles, switchback, shadows

    async def create(self, req: RunRequest, plain: Callable[[RunRequest], Awaitable[Run]]) -> Run:
        if req.ensemble_definition_id:
            return await self.ensembles.start(req)
        if (served := await self.switchback.serve(req, plain)) is not None:
            return served
        run = await plain(req)
        await self.shadows.after(req, run)
        return run

    async def cancel(self, runs: list[Run]) -> list[Run]:
        return await self.ensembles.cancel(runs)
