"""The built-in plugins, by name. The core finds them by these strings and never imports them itself.

They are ordinary plugins in the import package ``pipeline_core_plugins`` (the repository's
``plugins/`` folder, installed under a name that belongs to this project alone). Users name them
``plugins.<module>`` (``plugins.plots.boundary``), as they always have, in ``[pipeline]
disable_plugins`` and ``plugins``, ``PIPELINE_CORE_PLUGINS`` and ``PIPELINE_CORE_BLOCK_PLUGINS``;
the short ``plots.boundary`` and the module's own ``pipeline_core_plugins.plots.boundary`` name the
same plugin.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

PACKAGE = "pipeline_core_plugins"
#: Installed distributions declare their plugins as entry points in this group.
ENTRY_POINT_GROUP = "pipeline_core"
PREFIX = "plugins."

#: Registered by every host, in this order (llm's ``DEFAULT_PLUGINS``, as names).
DEFAULT_PLUGINS: tuple[str, ...] = (
    "plugins.datasets.iris",
    "plugins.datasets.synthetic",
    "plugins.datasets.digits",
    "plugins.datasets.mnist",
    "plugins.datasets.csv_file",
    "plugins.datasets.image_folder",
    "plugins.datasets.cifar10",
    "plugins.models.mlp",
    "plugins.models.cnn",
    "plugins.models.torchvision_models",
    "plugins.optimizers",
    "plugins.schedulers",
    "plugins.losses",
    "plugins.metrics",
    "plugins.exporters.torchscript",
    "plugins.exporters.onnx",
    "plugins.exporters.torch_export",
    "plugins.stages",
    "plugins.export_stage",
    "plugins.progress",
    # the plots, in the order the evaluate stage draws them and the report shows them
    "plugins.plots.curves",
    "plugins.plots.regression",
    "plugins.plots.mistakes",
    "plugins.plots.samples",
    "plugins.plots.boundary",
    "plugins.plots.confusion",
    "plugins.trackers.jsonl",
    "plugins.trackers.mlflow",  # imports mlflow only where a [trackers.mlflow] table switches it on
    "plugins.report",
)
#: Shipped, but loaded only where a pipeline file lists them under ``[pipeline] plugins``.
OPTIONAL_PLUGINS: tuple[str, ...] = ("plugins.trackers.tensorboard",)


def installed_plugins() -> bool:
    """Whether any distribution declares a plugin (an entry point in :data:`ENTRY_POINT_GROUP`).

    No built-in adds a command (``register_commands``; a test pins it), so where nothing else is
    installed the CLI lists its commands without loading a single plugin, and ``pipeline --help``
    starts without importing torch."""
    return bool(plugin_entry_points())


def plugin_entry_points() -> list[EntryPoint]:
    """The entry points of :data:`ENTRY_POINT_GROUP`, read again only when the import path changed: a
    folder on it that gains or loses a distribution (an install, an upgrade, an uninstall) gets a
    new modification time. Reading them scans every installed distribution, about 7 ms, which a
    sweep paid once per trial."""
    return list(_entry_points_on(tuple((entry, _modified(entry)) for entry in sys.path)))


@functools.lru_cache(maxsize=8)
def _entry_points_on(path: tuple[tuple[str, int | None], ...]) -> tuple[EntryPoint, ...]:
    import importlib.metadata  # imported when read: `pipeline --help` starts without it

    return tuple(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _modified(entry: str) -> int | None:
    try:
        return os.stat(entry or ".").st_mtime_ns
    except OSError:
        return None


def canonical(name: str) -> str:
    """A built-in's name (``plugins.plots.boundary``) for any of the names it goes by; any other
    name as it is."""
    for candidate in (name, PREFIX + name, PREFIX + name.removeprefix(PACKAGE + ".")):
        if candidate in DEFAULT_PLUGINS or candidate in OPTIONAL_PLUGINS:
            return candidate
    return name


def module_of(name: str) -> str:
    """The module a built-in's name stands for: ``plugins.plots.boundary`` →
    ``pipeline_core_plugins.plots.boundary``."""
    return PACKAGE + "." + canonical(name).removeprefix(PREFIX)


def is_builtin(name: str) -> bool:
    return canonical(name) in DEFAULT_PLUGINS or canonical(name) in OPTIONAL_PLUGINS
