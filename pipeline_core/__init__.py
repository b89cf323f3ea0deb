"""pipeline_core: declarative, plugin-based training pipelines for PyTorch.

Quick start for plugin authors. Declare an entry point in your distribution's ``pyproject.toml``::

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

A pipeline file then uses it as ``[model] name = "tiny"  hidden = 32``.

The names below are imported on first use, so ``pipeline predict`` (which needs onnxruntime only) starts
without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name → the module that defines it
_EXPORTS = {
    "ComponentConfig": "pipeline_core.config",
    "PipelineConfig": "pipeline_core.config",
    "RunContext": "pipeline_core.context",
    "DataBundle": "pipeline_core.data",
    "DatasetContext": "pipeline_core.data",
    "DataSpec": "pipeline_core.data",
    "Predictions": "pipeline_core.data",
    "Split": "pipeline_core.data",
    "Task": "pipeline_core.data",
    "ConfigError": "pipeline_core.errors",
    "Interrupted": "pipeline_core.errors",
    "PipelineError": "pipeline_core.errors",
    "PluginError": "pipeline_core.errors",
    "RunFailed": "pipeline_core.errors",
    "ExportInfo": "pipeline_core.export",
    "Exporter": "pipeline_core.export",
    "LoadedModel": "pipeline_core.export",
    "hookimpl": "pipeline_core.hookspecs",
    "LRSchedule": "pipeline_core.training.schedule",
    "TrainingPlan": "pipeline_core.training.schedule",
    "fit": "pipeline_core.training.fit",
    "Evaluator": "pipeline_core.evaluation",
    "Register": "pipeline_core.registry",
    "class_indices": "pipeline_core.data",
    "predict": "pipeline_core.evaluation",
    "scalars": "pipeline_core.results",
    "summarize": "pipeline_core.model_summary",
    "RunFiles": "pipeline_core.artifacts",
    "SplitOptions": "pipeline_core.tabular",
    "Standardize": "pipeline_core.tabular",
    "check_fractions": "pipeline_core.tabular",
    "split_options": "pipeline_core.tabular",
    "split_tabular": "pipeline_core.tabular",
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
    from pipeline_core.config import ComponentConfig, PipelineConfig
    from pipeline_core.context import RunContext
    from pipeline_core.data import DataBundle, DatasetContext, DataSpec, Predictions, Split, Task
    from pipeline_core.errors import ConfigError, Interrupted, PipelineError, PluginError, RunFailed
    from pipeline_core.export import Exporter, ExportInfo, LoadedModel
    from pipeline_core.hookspecs import hookimpl
    from pipeline_core.registry import Register
    from pipeline_core.training.schedule import LRSchedule, TrainingPlan
