"""Request-scoped access to the daemon's services."""

from __future__ import annotations

from fastapi import Request

from orchestrator.services import Services


async def services(request: Request) -> Services:
    """``async`` so FastAPI calls it inline instead of through its thread pool."""
    svc: Services = request.app.state.services
    return svc


def absolute_url(request: Request, path: str) -> str:
    """An absolute URL on this daemon (the SDK PUTs and GETs these as-is)."""
    return str(request.base_url).rstrip("/") + "/" + path.lstrip("/")
