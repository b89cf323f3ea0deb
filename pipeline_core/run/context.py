"""The state a run carries from stage to stage, and what lifecycle hooks observe."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from pipeline_core.components.host import Host
from pipeline_core.config.file import ComponentConfig, PipelineConfig
from pipeline_core.data.loaded import LoadedData
from pipeline_core.errors import ConfigError, PipelineError
from pipeline_core.run import artifacts
from pipeline_core.run.distributed import SINGLE, Distributed
from pipeline_core.run.failure import RunFailure
from pipeline_core.run.plots import PlotIndex
from pipeline_core.run.results import MetricValue, TrainingSummary

State = TypeVar("State")


@dataclass(repr=False)
class RunContext:
    """One pipeline run. Stages read and write it; lifecycle hooks observe it.

    Results are typed fields (``history``, ``training``, ``metrics``, ``export_report``, ``plots``,
    ``threads``), so plugins share them without agreeing on string keys; a plugin's own per-run state
    is :meth:`plugin_state`. Files go into the run folder through the ``write_*`` methods: atomically,
    and only from the process that writes (rank 0 of a data-parallel run)."""

    config: PipelineConfig
    host: Host
    run_dir: Path
    device: torch.device
    progress: str = "auto"  # "auto" (a live bar on a terminal, else quiet), "bar", "lines" or "none"
    resuming: bool = False  # continuing an earlier run of this folder from its last checkpoint
    checkpoints: bool = True  # training writes checkpoints (not a sweep's trial: a stopped trial runs again from its start)
    distributed: Distributed = SINGLE  # this process's rank in a data-parallel job
    data: LoadedData | None = None
    model: nn.Module | None = None
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch (on_epoch_end's metrics)
    training: TrainingSummary | None = None  # set by the train stage (or read back from training.json)
    threads: int | None = None  # torch's intra-op threads, as the train stage chose them
    metrics: dict[str, dict[str, MetricValue]] = field(default_factory=dict)  # split → metric → number or matrix
    export_report: dict[str, dict[str, Any]] = field(default_factory=dict)  # format → its export check
    failure: RunFailure | None = None  # why the run failed, once it has (status.json holds the same)
    plots: PlotIndex = field(init=False)  # plots/<name>.png and plots/index.json
    _plugin_states: dict[type, Any] = field(default_factory=dict, init=False)
    _state: dict[str, Any] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.plots = PlotIndex(self.run_dir, writes=self.is_main)

    def __repr__(self) -> str:
        return f"RunContext({self.config.name!r}, run_dir={str(self.run_dir)!r})"

    def create(self, component: ComponentConfig, *context: Any) -> Any:
        """Call a configured component with the host's context arguments and its validated options.
        An option annotated ``pathlib.Path`` arrives resolved: a relative path starts at the pipeline
        file's folder (``config.root``), wherever the command was run from."""
        factory = self.host.registry.get(component.kind, component.name).factory
        return factory(*context, **component.resolved_options(self.config.root))

    def loss_config(self, task: str) -> ComponentConfig:
        """``[train.loss]``, or else the loss registered as the default of ``task`` (the data's task):
        a pipeline file need not name the loss its data implies."""
        train = self.config.train
        if train is not None and train.loss is not None:
            return train.loss
        return self._default("loss", task, f"[train.loss] is not given and no registered loss is the default for a {task} task")

    def optimizer_config(self) -> ComponentConfig:
        """``[train.optimizer]``, or else the optimizer registered as the default, with its options' defaults."""
        train = self.config.train
        if train is not None and train.optimizer is not None:
            return train.optimizer
        return self._default("optimizer", None, "[train.optimizer] is not given and no registered optimizer is the default")

    def _default(self, kind: str, task: str | None, missing: str) -> ComponentConfig:
        registry = self.host.registry
        found = registry.defaults(kind, task)
        if len(found) != 1:
            names = ", ".join(registry.names(kind))
            reason = missing if not found else (f"[train.{kind}] is not given and {len(found)} plugins register the default: "
                                                + ", ".join(f"{c.name!r} ({c.plugin})" for c in found))
            raise ConfigError(f"{reason}; add a [train.{kind}] table (name one of: {names})")
        values, problems = found[0].options.validate({})  # its options' defaults, as a table naming it alone would give
        if problems:
            raise ConfigError(f"the default {kind} {found[0].name!r} ({found[0].plugin}) needs options: "
                              f"{'; '.join(item.message for item in problems)}; add a [train.{kind}] table")
        return ComponentConfig(kind, found[0].name, values)

    def require_data(self, stage: str) -> LoadedData:
        if self.data is None:
            raise PipelineError(f"stage {stage!r} needs data: put 'load_data' before it in pipeline.stages")
        return self.data

    def require_model(self, stage: str) -> nn.Module:
        if self.model is None:
            raise PipelineError(f"stage {stage!r} needs a model: put 'build_model' before it in pipeline.stages")
        return self.model

    def plugin_state(self, kind: type[State]) -> State:
        """This run's instance of ``kind``, made with ``kind()`` on first use: a plugin's own per-run
        state, typed, and never in module globals (a process may run several pipelines)."""
        if kind not in self._plugin_states:
            self._plugin_states[kind] = kind()
        return self._plugin_states[kind]

    @property
    def state(self) -> dict[str, Any]:
        """Deprecated: a free-form dict, kept for plugins written before :meth:`plugin_state`, which
        keeps a plugin's own per-run state typed and apart from every other plugin's."""
        _warn_state()
        return self._state

    @state.setter
    def state(self, value: dict[str, Any]) -> None:
        _warn_state()
        self._state = value

    def path(self, name: str) -> Path:
        """A file in the run folder (parents created)."""
        target = self.run_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    @property
    def is_main(self) -> bool:
        """True in a single-process run and on rank 0 of a data-parallel one: the process that writes."""
        return self.distributed.is_main

    def write_file(self, name: str, write: Callable[[Path], None]) -> Path:
        """Have ``write`` fill a temporary file, then put it in place as ``name`` in the run folder:
        complete or absent, never half-written (``torch.save``, ``savefig``, ...). On ranks other
        than 0 of a data-parallel run this writes nothing."""
        target = self.run_dir / name
        return artifacts.atomic_write(self.path(name), write) if self.is_main else target

    def write_text(self, name: str, text: str) -> Path:
        """Write a text file of the run folder atomically (rank 0 only, like :meth:`write_file`)."""
        return self.write_file(name, lambda temp: temp.write_bytes(text.encode("utf-8")))

    def write_json(self, name: str, value: Any) -> Path:
        """Write a JSON file of the run folder atomically (rank 0 only, like :meth:`write_file`)."""
        return self.write_text(name, artifacts.json_text(value))

    def write_csv(self, name: str, rows: list[dict[str, Any]], last: tuple[str, ...] = ()) -> Path:
        """Write rows as a CSV file of the run folder atomically; columns are the union of the rows'
        keys, in first-seen order, those in ``last`` at the end (rank 0 only, like :meth:`write_file`)."""
        return self.write_text(name, artifacts.csv_text(rows, last))


def _warn_state() -> None:
    warnings.warn(
        "RunContext.state is deprecated and goes in the next release: keep a plugin's per-run state in "
        "run.plugin_state(YourClass), an instance of your own class made on first use (docs/plugins.md)",
        DeprecationWarning, stacklevel=3,
    )
