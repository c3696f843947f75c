"""The ``result`` of ``POST .../runs``: the SDK's ``ExternalRunResult`` (a tracked run)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api.fields import NOT_BOOLEAN
from orchestrator.models import RunStatus
from orchestrator.runs.tracked import TrackedResult


class ExternalResult(BaseModel):
    """A run that happened elsewhere: its status and the uploads that hold what it left."""

    model_config = ConfigDict(extra="ignore")
    status: Literal["succeeded", "failed"]
    execution_duration: Annotated[float, Field(ge=0), NOT_BOOLEAN] | None = Field(
        default=None, description="milliseconds"
    )
    error_message: str | None = None
    output_upload_id: str | None = None
    error_upload_id: str | None = Field(default=None, description="the run's log")
    statistics_upload_id: str | None = None
    metrics_upload_id: str | None = None
    assets_upload_id: str | None = None

    def to_result(self) -> TrackedResult:
        return TrackedResult(
            status=RunStatus(self.status),
            duration_ms=self.execution_duration,
            error_message=self.error_message or "",
            output_upload_id=self.output_upload_id,
            log_upload_id=self.error_upload_id,
            statistics_upload_id=self.statistics_upload_id,
            metrics_upload_id=self.metrics_upload_id,
            assets_upload_id=self.assets_upload_id,
        )
