"""Ensemble definitions: run groups to fan out to, and rules that pick the winning child.

Plain data shared by the store, the domain and the API (the SDK's ``RunGroup``,
``EvaluationRule`` and ``EnsembleDefinition``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.models import now


@dataclass(frozen=True)
class RunGroup:
    id: str
    instance_id: str
    options: dict[str, str] = field(default_factory=dict)
    repetitions: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "instance_id": self.instance_id,
            "options": dict(self.options),
            "repetitions": self.repetitions,
        }


@dataclass(frozen=True)
class EvaluationRule:
    id: str
    statistics_path: str
    objective: str  # "minimize" | "maximize"
    tolerance_value: float = 0.0
    tolerance_type: str = "absolute"  # "absolute" | "relative"
    index: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "statistics_path": self.statistics_path,
            "objective": self.objective,
            "tolerance": {"value": self.tolerance_value, "type": self.tolerance_type},
            "index": self.index,
        }


@dataclass
class EnsembleDefinition:
    id: str
    app_id: str
    run_groups: list[RunGroup]
    rules: list[EvaluationRule]
    name: str = ""
    description: str = ""
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)

    def to_dict(self) -> dict[str, Any]:
        """The SDK's ``EnsembleDefinition`` (also what an ensemble run keeps of it)."""
        return {
            "id": self.id,
            "application_id": self.app_id,
            "name": self.name,
            "description": self.description,
            "run_groups": [g.to_dict() for g in self.run_groups],
            "rules": [r.to_dict() for r in self.rules],
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnsembleDefinition:
        return cls(
            id=data["id"],
            app_id=data["application_id"],
            name=data.get("name", ""),
            description=data.get("description", ""),
            run_groups=[
                RunGroup(g["id"], g["instance_id"], dict(g.get("options") or {}), g["repetitions"])
                for g in data["run_groups"]
            ],
            rules=[
                EvaluationRule(
                    r["id"],
                    r["statistics_path"],
                    r["objective"],
                    float(r["tolerance"]["value"]),
                    r["tolerance"]["type"],
                    int(r["index"]),
                )
                for r in data["rules"]
            ],
            created_at=data["created_at"],
            updated_at=data["updated_at"],
        )


@dataclass
class EnsembleRun:
    """What an ensemble run keeps beside its run row: its definition then, and the verdict."""

    run_id: str
    app_id: str
    definition: EnsembleDefinition
    winner_run_id: str | None = None
    evaluation: list[dict[str, Any]] | None = None
