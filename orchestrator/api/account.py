"""``/v1/account``: the account's queue (queued and running runs of every app).

The SDK's ``Account.queue`` reads ``{"runs": [QueuedRun]}``; orch has one local
account, so the queue is every unfinished run, oldest first (the order they start in
at equal priority).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from orchestrator.api.deps import services
from orchestrator.api.responses import errors
from orchestrator.api.wire import LOCAL_USER
from orchestrator.models import Run
from orchestrator.services import Services

router = APIRouter(prefix="/v1/account", tags=["account"], responses=errors(401))


def queued_run(run: Run) -> dict[str, Any]:
    """The SDK's ``QueuedRun``."""
    return {
        "id": run.id,
        "user_email": LOCAL_USER,
        "name": run.name,
        "description": run.description,
        "created_at": run.created_at,
        "application_id": run.app_id,
        "application_instance_id": run.instance_id,
        "application_version_id": run.version_id or "",
        "execution_class": run.execution_class or "local",
        "status_v2": run.status.value,
        "queuing_priority": run.priority,
    }


@router.get("/queue")
async def account_queue(svc: Services = Depends(services)) -> dict[str, Any]:
    """Queued and running runs across apps."""
    return {"runs": [queued_run(r) for r in await svc.runs.queue()]}
