"""The domain services the API calls, built once by the daemon (the composition root)."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.config import Settings
from orchestrator.experiments.acceptance import AcceptanceService
from orchestrator.experiments.analysis import ExperimentAnalysis
from orchestrator.experiments.batch import ExperimentService
from orchestrator.experiments.ensemble_runs import EnsembleRuns
from orchestrator.experiments.ensembles import EnsembleDefinitions
from orchestrator.experiments.inputs import InputService, InputSetService
from orchestrator.experiments.shadow import ShadowTests
from orchestrator.experiments.switchback import SwitchbackTests
from orchestrator.registry.apps import AppService
from orchestrator.registry.instances import InstanceService
from orchestrator.registry.push import PushService
from orchestrator.registry.secrets import SecretsService
from orchestrator.registry.versions import VersionService
from orchestrator.runs.service import RunService
from orchestrator.store import Store
from orchestrator.store.blobs import BlobStore
from orchestrator.uploads import UploadService


@dataclass
class Services:
    settings: Settings
    store: Store
    blobs: BlobStore
    apps: AppService
    push: PushService
    versions: VersionService
    instances: InstanceService
    uploads: UploadService
    runs: RunService
    inputs: InputService
    input_sets: InputSetService
    experiments: ExperimentService
    analysis: ExperimentAnalysis
    secrets: SecretsService
    acceptance: AcceptanceService
    ensemble_definitions: EnsembleDefinitions
    ensemble_runs: EnsembleRuns
    switchback_tests: SwitchbackTests
    shadow_tests: ShadowTests
