"""The state a run carries from stage to stage, and what lifecycle hooks observe."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline_core import artifacts
from pipeline_core.config import ComponentConfig, PipelineConfig
from pipeline_core.data import DataBundle
from pipeline_core.distributed import SINGLE, Distributed
from pipeline_core.errors import PipelineError
from pipeline_core.host import Host


@dataclass(frozen=True)
class TrainingSummary:
    """What training actually did, as opposed to what was configured: the model card and the ONNX
    metadata state these (early stopping and resumed runs make them differ from ``train.epochs``)."""

    epochs_configured: int
    epochs_run: int
    steps: int | None  # None: unknown (a run recorded before training.json existed)
    stopped_early: bool = False
    best_epoch: int = 0  # with early stopping and restore_best: the epoch whose weights were kept
    monitor: str = ""  # what early stopping watched
    resumed: bool = False  # continued from a checkpoint at least once

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingSummary:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


@dataclass(repr=False)
class RunContext:
    """One pipeline run. Stages read and write it; plugins may keep their own state in ``state``."""

    config: PipelineConfig
    host: Host
    run_dir: Path
    device: torch.device
    progress: str = "auto"  # "auto" (a live bar on a terminal, else quiet), "bar", "lines" or "none"
    resuming: bool = False  # continuing an earlier run of this folder from its last checkpoint
    distributed: Distributed = SINGLE  # this process's rank in a data-parallel job
    data: DataBundle | None = None
    model: nn.Module | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    training: TrainingSummary | None = None  # set by the train stage (or read back from training.json)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # split → metric → number or matrix
    export_report: dict[str, dict[str, Any]] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"RunContext({self.config.name!r}, run_dir={str(self.run_dir)!r})"

    def create(self, component: ComponentConfig, *context: Any) -> Any:
        """Call a configured component with the host's context arguments and its validated options."""
        factory = self.host.registry.get(component.kind, component.name).factory
        return factory(*context, **component.options)

    def require_data(self, stage: str) -> DataBundle:
        if self.data is None:
            raise PipelineError(f"stage {stage!r} needs data: put 'load_data' before it in pipeline.stages")
        return self.data

    def require_model(self, stage: str) -> nn.Module:
        if self.model is None:
            raise PipelineError(f"stage {stage!r} needs a model: put 'build_model' before it in pipeline.stages")
        return self.model

    def path(self, name: str) -> Path:
        """A file in the run folder (parents created)."""
        target = self.run_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    @property
    def is_main(self) -> bool:
        """True in a single-process run and on rank 0 of a data-parallel one: the process that writes."""
        return self.distributed.is_main

    def write_text(self, name: str, text: str) -> Path:
        """Write a file of the run folder atomically: complete or absent, never half-written.
        On ranks other than 0 of a data-parallel run this writes nothing."""
        target = self.run_dir / name
        return artifacts.write_text(self.path(name), text) if self.is_main else target

    def write_json(self, name: str, value: Any) -> Path:
        """Write a JSON file of the run folder atomically (rank 0 only, like :meth:`write_text`)."""
        target = self.run_dir / name
        return artifacts.write_json(self.path(name), value) if self.is_main else target
