"""pipeline_core: declarative, plugin-based training pipelines for PyTorch.

This package is the public API for component authors (datasets, models, optimizers, schedulers,
losses, metrics, exporters, plots, trackers); :mod:`pipeline_core.engine` adds what a stage author
needs (the training engine, the export check, the bundle, the config's sections). Those two modules
are the only part of pipeline-core a plugin imports: the built-in plugins use nothing else (a
contract in ``make test`` keeps it so). Everything in the packages below them is internal and may
change; :mod:`pipeline_core.testing` helps a plugin's tests.

Quick start. Declare an entry point in your distribution's ``pyproject.toml``::

    [project.entry-points.pipeline_core]
    my_plugin = "my_plugin"

and implement any hook from :mod:`pipeline_core.hookspecs` in that module::

    from pipeline_core import DataSpec, hookimpl
    from torch import nn

    @hookimpl
    def register_models(register):
        register("tiny", tiny)

    def tiny(spec: DataSpec, *, hidden: int = 16) -> nn.Module:
        \"\"\"A one-hidden-layer MLP; ``hidden`` is validated from the annotation.\"\"\"
        return nn.Sequential(nn.Linear(spec.input_shape[0], hidden), nn.ReLU(), nn.Linear(hidden, spec.num_outputs))

A pipeline file then uses it as ``[model] name = "tiny"  hidden = 32``. docs/plugins.md lists every
name below by what a dataset, model, exporter, plot or tracker needs, and the engine's for stages.

The names are imported on first use, so ``pipeline predict`` (which needs onnxruntime only) and
``pipeline --help`` start without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pipeline_core import _moved
from pipeline_core.version import __version__

#: public name → the module that defines it
_EXPORTS = {
    # writing a plugin
    "hookimpl": "pipeline_core.hookspecs",
    "Register": "pipeline_core.components.kinds",
    "PipelineError": "pipeline_core.errors",
    "ConfigError": "pipeline_core.errors",
    "PluginError": "pipeline_core.errors",
    "RunFailed": "pipeline_core.errors",
    "Interrupted": "pipeline_core.errors",
    "RunFailure": "pipeline_core.run.failure",
    # datasets
    "LoadedData": "pipeline_core.data.loaded",
    "DataSpec": "pipeline_core.data.spec",
    "DatasetContext": "pipeline_core.data.spec",
    "ImageSpec": "pipeline_core.data.spec",
    "Task": "pipeline_core.data.spec",
    "Split": "pipeline_core.data.splits",
    "StreamedSplit": "pipeline_core.data.streaming",
    "ScaleImages": "pipeline_core.data.images",
    "SplitOptions": "pipeline_core.data.tabular",
    "check_fractions": "pipeline_core.data.tabular",
    "split_options": "pipeline_core.data.tabular",
    "Standardize": "pipeline_core.data.tabular_split",
    "split_tabular": "pipeline_core.data.tabular_split",
    "split_columns": "pipeline_core.data.tabular_split",
    "is_blank": "pipeline_core.data.columns",
    # schedulers, metrics
    "LRSchedule": "pipeline_core.training.schedule",
    "TrainingPlan": "pipeline_core.training.schedule",
    "Predictions": "pipeline_core.data.loaded",
    "class_indices": "pipeline_core.data.loaded",
    "MetricValue": "pipeline_core.run.results",
    "scalars": "pipeline_core.run.results",
    # exporters
    "Exporter": "pipeline_core.export.exporter",
    "ExportInfo": "pipeline_core.export.exporter",
    "LoadedModel": "pipeline_core.export.exporter",
    "LoadedTorchModule": "pipeline_core.export.exporter",
    "METADATA_FILE": "pipeline_core.export.exporter",
    "named_outputs": "pipeline_core.export.exporter",
    "output_names_from": "pipeline_core.export.exporter",
    "atomic_write": "pipeline_core.run.artifacts",
    # plots and trackers: the run and its typed results
    "RunContext": "pipeline_core.run.context",
    "RunFiles": "pipeline_core.run.artifacts",
    "TrainingSummary": "pipeline_core.run.results",
    "Plot": "pipeline_core.run.plots",
    "PlotIndex": "pipeline_core.run.plots",
    "model_outputs": "pipeline_core.model.evaluation",
    "ModelSummary": "pipeline_core.model.summary",
    "summarize": "pipeline_core.model.summary",
}

#: names that moved to :mod:`pipeline_core.engine` (issue 29): served here, with a DeprecationWarning, until the next release
_MOVED_TO_ENGINE = (
    "BUNDLE_DIR", "ComponentConfig", "EarlyStoppingSection", "EvaluateSection", "Evaluator", "ExportSection", "Noise",
    "PipelineConfig", "PipelineSection", "Tolerance", "TrainSection", "bundle_metadata", "check_batch_independence",
    "check_data_spec", "check_model_outputs", "deployable", "extreme_rows", "fit", "is_sealed", "measure_noise",
    "place_splits", "remember_model_check", "seal_bundle", "verify",
)

#: names renamed so that each thing has one name (issue 29): served here, with a DeprecationWarning, until the next release
_RENAMED = _moved.RENAMED["pipeline_core"]

__all__ = sorted([*_EXPORTS, "__version__"])

_moved.install()  # the old module paths (pipeline_core.sections, ...) keep importing, with a warning


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in _MOVED_TO_ENGINE:
        _moved.warn_moved(f"pipeline_core.{name}", f"pipeline_core.engine.{name}", stacklevel=2)
        return getattr(importlib.import_module("pipeline_core.engine"), name)
    if name in _RENAMED:  # DataBundle → LoadedData, predict → model_outputs
        _moved.warn_renamed(f"pipeline_core.{name}", f"pipeline_core.{_RENAMED[name]}", stacklevel=2)
        return __getattr__(_RENAMED[name])
    raise AttributeError(f"module 'pipeline_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from pipeline_core.components.kinds import Register
    from pipeline_core.data.images import ScaleImages
    from pipeline_core.data.loaded import LoadedData, Predictions, class_indices
    from pipeline_core.data.spec import DatasetContext, DataSpec, ImageSpec, Task
    from pipeline_core.data.splits import Split
    from pipeline_core.data.streaming import StreamedSplit
    from pipeline_core.data.tabular import SplitOptions, check_fractions, split_options
    from pipeline_core.data.tabular_split import Standardize, split_tabular
    from pipeline_core.errors import ConfigError, Interrupted, PipelineError, PluginError, RunFailed
    from pipeline_core.export.exporter import (
        METADATA_FILE,
        Exporter,
        ExportInfo,
        LoadedModel,
        LoadedTorchModule,
        named_outputs,
        output_names_from,
    )
    from pipeline_core.hookspecs import hookimpl
    from pipeline_core.model.evaluation import model_outputs
    from pipeline_core.model.summary import ModelSummary, summarize
    from pipeline_core.run.artifacts import RunFiles, atomic_write
    from pipeline_core.run.context import RunContext
    from pipeline_core.run.failure import RunFailure
    from pipeline_core.run.plots import Plot, PlotIndex
    from pipeline_core.run.results import MetricValue, TrainingSummary, scalars
    from pipeline_core.training.schedule import LRSchedule, TrainingPlan
