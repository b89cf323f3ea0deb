"""pipeline_core: declarative, plugin-based training pipelines for PyTorch.

This package is the public API for plugin authors, and the only part of pipeline-core a plugin
imports: the built-in plugins use nothing else (a contract in ``make test`` keeps it so). Everything
in its submodules is internal and may change; :mod:`pipeline_core.testing` helps a plugin's tests.

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
name below by what a dataset, model, exporter, stage, plot or tracker needs.

The names are imported on first use, so ``pipeline predict`` (which needs onnxruntime only) and
``pipeline --help`` start without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pipeline_core.version import __version__

#: public name → the module that defines it
_EXPORTS = {
    # writing a plugin
    "hookimpl": "pipeline_core.hookspecs",
    "Register": "pipeline_core.registry",
    "PipelineError": "pipeline_core.errors",
    "ConfigError": "pipeline_core.errors",
    "PluginError": "pipeline_core.errors",
    "RunFailed": "pipeline_core.errors",
    "Interrupted": "pipeline_core.errors",
    # datasets
    "DataBundle": "pipeline_core.data",
    "DataSpec": "pipeline_core.spec",
    "DatasetContext": "pipeline_core.spec",
    "ImageSpec": "pipeline_core.spec",
    "Split": "pipeline_core.splits",
    "StreamedSplit": "pipeline_core.streaming",
    "ScaleImages": "pipeline_core.images",
    "place_splits": "pipeline_core.loading",
    "Task": "pipeline_core.spec",
    "SplitOptions": "pipeline_core.tabular",
    "Standardize": "pipeline_core.tabular_split",
    "check_fractions": "pipeline_core.tabular",
    "split_options": "pipeline_core.tabular",
    "split_tabular": "pipeline_core.tabular_split",
    # schedulers, metrics
    "LRSchedule": "pipeline_core.training.schedule",
    "TrainingPlan": "pipeline_core.training.schedule",
    "Predictions": "pipeline_core.data",
    "class_indices": "pipeline_core.data",
    "MetricValue": "pipeline_core.results",
    "scalars": "pipeline_core.results",
    # exporters
    "Exporter": "pipeline_core.export",
    "ExportInfo": "pipeline_core.export",
    "LoadedModel": "pipeline_core.export",
    "LoadedTorchModule": "pipeline_core.export",
    "METADATA_FILE": "pipeline_core.export",
    "named_outputs": "pipeline_core.export",
    "output_names_from": "pipeline_core.export",
    "atomic_write": "pipeline_core.artifacts",
    # stages, plots and trackers: the run and its typed results
    "RunContext": "pipeline_core.context",
    "RunFiles": "pipeline_core.artifacts",
    "TrainingSummary": "pipeline_core.results",
    "RunFailure": "pipeline_core.failure",
    "Plot": "pipeline_core.plots",
    "PlotIndex": "pipeline_core.plots",
    "PipelineConfig": "pipeline_core.config",
    "ComponentConfig": "pipeline_core.sections",
    "PipelineSection": "pipeline_core.sections",
    "TrainSection": "pipeline_core.sections",
    "EarlyStoppingSection": "pipeline_core.sections",
    "EvaluateSection": "pipeline_core.sections",
    "ExportSection": "pipeline_core.sections",
    "fit": "pipeline_core.training.fit",
    "Evaluator": "pipeline_core.evaluation",
    "predict": "pipeline_core.evaluation",
    "deployable": "pipeline_core.export",
    "Tolerance": "pipeline_core.verification",
    "Noise": "pipeline_core.verification",
    "check_batch_independence": "pipeline_core.batch_independence",
    "extreme_rows": "pipeline_core.batch_independence",
    "measure_noise": "pipeline_core.verification",
    "verify": "pipeline_core.verification",
    "BUNDLE_DIR": "pipeline_core.bundle",
    "bundle_metadata": "pipeline_core.bundle",
    "is_sealed": "pipeline_core.bundle",
    "seal_bundle": "pipeline_core.bundle",
    "ModelSummary": "pipeline_core.model_summary",
    "summarize": "pipeline_core.model_summary",
    "check_data_spec": "pipeline_core.model_check",
    "check_model_outputs": "pipeline_core.model_check",
    "remember_model_check": "pipeline_core.check_cache",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pipeline_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from pipeline_core.artifacts import RunFiles, atomic_write
    from pipeline_core.batch_independence import check_batch_independence, extreme_rows
    from pipeline_core.bundle import BUNDLE_DIR, bundle_metadata, is_sealed, seal_bundle
    from pipeline_core.check_cache import remember_model_check
    from pipeline_core.config import PipelineConfig
    from pipeline_core.context import RunContext
    from pipeline_core.data import DataBundle, Predictions, class_indices
    from pipeline_core.errors import ConfigError, Interrupted, PipelineError, PluginError, RunFailed
    from pipeline_core.evaluation import Evaluator, predict
    from pipeline_core.export import (
        METADATA_FILE,
        Exporter,
        ExportInfo,
        LoadedModel,
        LoadedTorchModule,
        deployable,
        named_outputs,
        output_names_from,
    )
    from pipeline_core.failure import RunFailure
    from pipeline_core.hookspecs import hookimpl
    from pipeline_core.images import ScaleImages
    from pipeline_core.loading import place_splits
    from pipeline_core.model_check import check_data_spec, check_model_outputs
    from pipeline_core.model_summary import ModelSummary, summarize
    from pipeline_core.plots import Plot, PlotIndex
    from pipeline_core.registry import Register
    from pipeline_core.results import MetricValue, TrainingSummary, scalars
    from pipeline_core.sections import (
        ComponentConfig,
        EarlyStoppingSection,
        EvaluateSection,
        ExportSection,
        PipelineSection,
        TrainSection,
    )
    from pipeline_core.spec import DatasetContext, DataSpec, ImageSpec, Task
    from pipeline_core.splits import Split
    from pipeline_core.streaming import StreamedSplit
    from pipeline_core.tabular import SplitOptions, check_fractions, split_options
    from pipeline_core.tabular_split import Standardize, split_tabular
    from pipeline_core.training.fit import fit
    from pipeline_core.training.schedule import LRSchedule, TrainingPlan
    from pipeline_core.verification import Noise, Tolerance, measure_noise, verify
