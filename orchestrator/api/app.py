"""The FastAPI application: routers, authentication and the error envelope."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp

from orchestrator import __version__
from orchestrator.api import (
    acceptance,
    account,
    applications,
    binary,
    ensembles,
    errors,
    experiments,
    instances,
    run_assets,
    run_files,
    runs,
    secrets,
    shadow_tests,
    switchback_tests,
    versions,
)
from orchestrator.api.gate import Gate, RequestChecks
from orchestrator.api.head import HeadAsGet
from orchestrator.api.hot_path import HotRoutes
from orchestrator.api.responses import finish_openapi
from orchestrator.api.routing import add_routes
from orchestrator.console import install as install_console
from orchestrator.disk import MIB
from orchestrator.services import Services

NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""An offline tool sends nothing anywhere, whatever OpenTelemetry the environment sets up
(and the per-request checks cost ~15 % of FastAPI's own time)."""

_V1_ROUTERS = (
    runs.router,  # first: routes are matched in order, and runs are the hot path
    applications.router,
    binary.router,
    versions.router,
    instances.router,
    experiments.router,
    secrets.router,
    acceptance.router,
    run_assets.router,
    account.router,
    ensembles.router,
    switchback_tests.router,
    shadow_tests.router,
)


def outermost(app: FastAPI) -> ASGIApp:
    """What the server runs: ``HEAD`` as ``GET`` (``api/head.py``), the two requests of
    every run answered in front of ``app`` (``api/hot_path.py``), everything else
    through it."""
    return HeadAsGet(HotRoutes(app, app.state.checks))


def create_app(svc: Services, api_key: str) -> FastAPI:
    app = FastAPI(
        title="orch",
        version=__version__,
        summary="A local, offline twin of Nextmv Cloud custom apps.",
        telemetry=NO_TELEMETRY,
        docs_url=None,  # the console serves /docs from local files (FastAPI's loads a CDN)
        redoc_url=None,
    )
    app.state.services = svc
    app.state.api_key = api_key
    errors.install(app)
    settings = svc.settings
    upload_mb = max(settings.max_upload_mb, settings.max_package_mb)
    app.state.checks = RequestChecks(api_key, svc.store.disk, max_upload=upload_mb * MIB)
    app.add_middleware(Gate, checks=app.state.checks)  # outermost: nothing runs before it
    for router in (*_V1_ROUTERS, binary.uploads, run_files.downloads, run_assets.downloads):
        add_routes(app, router)
    install_console(app, svc, api_key)
    app.openapi = lambda: finish_openapi(app)  # type: ignore[method-assign]

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, Any]:
        """Open (no key): liveness, how busy the queue is, what runs the models and how
        they are isolated, the disk."""
        scheduler = svc.runs.scheduler
        backend = scheduler.executor.backend
        details = backend.details
        inbox = getattr(app.state, "inbox", None)
        problem = inbox.problem if inbox is not None else None
        disk = svc.store.disk.current()
        body: dict[str, Any] = {
            # degraded: a cluster whose scheduler is out of reach (runs wait queued), a
            # push directory that cannot be watched (drops wait unseen), or a disk low or
            # full (new data answers 507, queued runs wait; ``disk.state`` says which)
            "status": "degraded"
            if details.get("connected") is False or problem or disk.state != "ok"
            else "ok",
            "version": __version__,
            "runs": {"running": scheduler.active, "queued": scheduler.queued},
            "isolation": backend.isolation,
            "disk": disk.to_dict(),
            "backend": {"name": backend.name, "slots": backend.slots, **details},
        }
        if problem:
            body["inbox"] = {"problem": problem}
        if (watch := getattr(app.state, "loop_watch", None)) is not None:
            body["loop"] = watch.figures()
        return body

    return app
