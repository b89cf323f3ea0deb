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
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(hidden), nn.ReLU(), nn.Linear(hidden, spec.num_outputs))

A pipeline file then uses it as ``[model] name = "tiny"  hidden = 32``.
"""

from pipeline_core.config import ComponentConfig, PipelineConfig
from pipeline_core.context import RunContext
from pipeline_core.data import DataBundle, DatasetContext, DataSpec, Predictions, Split, Task
from pipeline_core.errors import ConfigError, PipelineError, PluginError, RunFailed
from pipeline_core.export import Exporter, LoadedModel
from pipeline_core.hookspecs import hookimpl
from pipeline_core.registry import Register

__version__ = "0.1.0"

__all__ = [
    "ComponentConfig",
    "ConfigError",
    "DataBundle",
    "DataSpec",
    "DatasetContext",
    "Exporter",
    "LoadedModel",
    "PipelineConfig",
    "PipelineError",
    "PluginError",
    "Predictions",
    "Register",
    "RunContext",
    "RunFailed",
    "Split",
    "Task",
    "__version__",
    "hookimpl",
]
