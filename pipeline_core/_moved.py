"""Where the core's modules went when it was grouped into packages (issue 29), which names were
renamed so that each thing has one name, and what keeps the old import paths and names working for
one release, each with a ``DeprecationWarning`` that names the new place or name.

* An old path that is free now (``pipeline_core.sections``) is answered by an import hook, a meta
  path finder that ``pipeline_core/__init__`` installs: ``import pipeline_core.sections`` gives the
  module ``pipeline_core.config.sections`` itself, so every name, and every patch made through the
  old path, is the new module's.
* An old module split in two (``pipeline_core.loading``) gives a module that reads each name from
  the new modules in turn.
* An old path that is a package now (``pipeline_core.config``, ``pipeline_core.data``,
  ``pipeline_core.export``) is the package itself; its ``__getattr__`` (:func:`old_module_names`)
  serves the old module's names. ``pipeline_core.host`` was such a package until the package took
  the name ``pipeline_core.discovery`` (:data:`GONE_PACKAGES`): the hook makes an empty package in
  its place that does the same, and its modules are old paths like the others.
* A renamed name (:data:`RENAMED`, ``DataBundle`` → ``LoadedData``) is served by its module's
  ``__getattr__`` (:func:`renamed_names`; ``pipeline_core.__getattr__`` for the package's own).

Names that moved from ``pipeline_core`` to ``pipeline_core.engine`` are served by
``pipeline_core.__getattr__``. Remove this module, the hook and the modules' ``__getattr__`` in the
next release. Standard library only: it runs when ``pipeline_core`` is imported.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any

#: ``config/sections.py``, split into one module per table of the pipeline file and what they share
SECTIONS = (
    "pipeline_core.config.common",
    "pipeline_core.config.pipeline_section",
    "pipeline_core.config.train_section",
    "pipeline_core.config.evaluate_section",
    "pipeline_core.config.export_section",
)

#: the old module → the module (or modules, for one that was split) where its names are now
MOVED_MODULES: dict[str, tuple[str, ...]] = {
    "pipeline_core.artifacts": ("pipeline_core.run.artifacts",),
    "pipeline_core.batch_independence": ("pipeline_core.export.batch_independence",),
    "pipeline_core.builtins": ("pipeline_core.discovery.builtins",),
    "pipeline_core.bundle": ("pipeline_core.export.bundle",),
    "pipeline_core.check_cache": ("pipeline_core.model.check_cache",),
    "pipeline_core.checkpoint": ("pipeline_core.run.checkpoint",),
    "pipeline_core.context": ("pipeline_core.run.context",),
    "pipeline_core.distributed": ("pipeline_core.run.distributed",),
    "pipeline_core.evaluation": ("pipeline_core.model.evaluation",),
    "pipeline_core.failure": ("pipeline_core.run.failure",),
    "pipeline_core.hook_names": ("pipeline_core.discovery.hook_names",),
    "pipeline_core.images": ("pipeline_core.data.images",),
    "pipeline_core.loading": ("pipeline_core.config.data_section", "pipeline_core.data.placement"),
    "pipeline_core.model_check": ("pipeline_core.model.check",),
    "pipeline_core.model_summary": ("pipeline_core.model.summary",),
    "pipeline_core.options": ("pipeline_core.components.options",),
    "pipeline_core.pipeline_file": ("pipeline_core.pipeline.load",),
    "pipeline_core.plots": ("pipeline_core.run.plots",),
    "pipeline_core.plugins": ("pipeline_core.discovery.build",),
    "pipeline_core.reexport": ("pipeline_core.pipeline.reexport",),
    "pipeline_core.registry": ("pipeline_core.components.registry",),
    "pipeline_core.results": ("pipeline_core.run.results",),
    "pipeline_core.runner": ("pipeline_core.pipeline.runner",),
    "pipeline_core.scaffold": ("pipeline_core.cli.scaffold",),
    "pipeline_core.sections": SECTIONS,
    "pipeline_core.signals": ("pipeline_core.run.signals",),
    "pipeline_core.spec": ("pipeline_core.data.spec",),
    "pipeline_core.splits": ("pipeline_core.data.splits",),
    "pipeline_core.streaming": ("pipeline_core.data.streaming",),
    "pipeline_core.sweep_section": ("pipeline_core.config.sweep_section",),
    "pipeline_core.tabular": ("pipeline_core.data.tabular",),
    "pipeline_core.tabular_split": ("pipeline_core.data.tabular_split",),
    "pipeline_core.toml_lines": ("pipeline_core.config.toml_lines",),
    "pipeline_core.verification": ("pipeline_core.export.verification",),
    "pipeline_core.worker_deaths": ("pipeline_core.data.worker_deaths",),
    # renamed by issue 29's second step, so that each thing has one name
    "pipeline_core.cli.plugin": ("pipeline_core.cli.plugin_authoring",),
    "pipeline_core.cli.plugins": ("pipeline_core.cli.plugin_listing",),
    "pipeline_core.config.sections": SECTIONS,
    "pipeline_core.host.build": ("pipeline_core.discovery.build",),
    "pipeline_core.host.builtins": ("pipeline_core.discovery.builtins",),
    "pipeline_core.host.hook_names": ("pipeline_core.discovery.hook_names",),
}

#: an old module whose path is a package now → the module that holds its names
NOW_PACKAGES: dict[str, str] = {
    "pipeline_core.config": "pipeline_core.config.file",
    "pipeline_core.data": "pipeline_core.data.loaded",
    "pipeline_core.export": "pipeline_core.export.exporter",
    "pipeline_core.host": "pipeline_core.components.host",
}


#: an old package that is no more → the package that took its place (its modules are in :data:`MOVED_MODULES`)
GONE_PACKAGES: dict[str, str] = {"pipeline_core.host": "pipeline_core.discovery"}

#: a module → its names that were renamed (old → new), so that each thing has one name
RENAMED: dict[str, dict[str, str]] = {
    "pipeline_core": {"DataBundle": "LoadedData", "predict": "model_outputs"},
    "pipeline_core.data.loaded": {"DataBundle": "LoadedData"},
    "pipeline_core.model.evaluation": {"predict": "model_outputs", "PREDICT_CHUNK": "OUTPUTS_CHUNK"},
    "pipeline_core.testing": {"load_pipeline": "load_with_plugins", "run_pipeline": "run_with_plugins"},
}


def warn_moved(old: str, new: str, stacklevel: int = 1) -> None:
    """``old`` was used: say where it is now. ``stacklevel`` counts from the caller, as in :func:`warnings.warn`."""
    warnings.warn(f"{old} moved to {new}; the old path works until the next release", DeprecationWarning, stacklevel=stacklevel + 1)


def warn_renamed(old: str, new: str, stacklevel: int = 1) -> None:
    """``old`` was used: say what it is called now."""
    warnings.warn(f"{old} was renamed {new}; the old name works until the next release", DeprecationWarning, stacklevel=stacklevel + 1)


def renamed_names(module: str) -> Callable[[str], Any]:
    """The ``__getattr__`` of a module with renamed names (:data:`RENAMED`): each old name, with a warning."""
    renamed = RENAMED[module]

    def __getattr__(name: str) -> Any:
        if name in renamed:
            warn_renamed(f"{module}.{name}", f"{module}.{renamed[name]}", stacklevel=2)
            return getattr(sys.modules[module], renamed[name])
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__


class OldPaths:
    """The import hook: a meta path finder (and loader) for the old paths of :data:`MOVED_MODULES`."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if fullname in GONE_PACKAGES:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return importlib.machinery.ModuleSpec(fullname, self) if fullname in MOVED_MODULES else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default: an empty module, which exec_module replaces

    def exec_module(self, module: types.ModuleType) -> None:
        if module.__name__ in GONE_PACKAGES:  # no warning yet: its old names and modules each warn
            module.__path__ = []
            module.__getattr__ = old_module_names(module.__name__)  # type: ignore[method-assign]
            return
        old, new = module.__name__, MOVED_MODULES[module.__name__]
        warn_moved(old, " and ".join(new), stacklevel=2)  # importlib's own frames are skipped: this names the import
        if len(new) == 1:
            sys.modules[old] = importlib.import_module(new[0])  # the import statement returns what sys.modules holds
            return
        modules = [importlib.import_module(name) for name in new]

        def __getattr__(name: str) -> Any:
            for candidate in modules:
                if hasattr(candidate, name):
                    return getattr(candidate, name)
            raise AttributeError(f"module {old!r} has no attribute {name!r}")

        module.__getattr__ = __getattr__  # type: ignore[method-assign]
        module.__dir__ = lambda: sorted({name for candidate in modules for name in dir(candidate) if not name.startswith("_")})  # type: ignore[method-assign]


def install() -> None:
    """Put the hook in front of the other finders, once (``pipeline_core/__init__`` calls it)."""
    if not any(isinstance(finder, OldPaths) for finder in sys.meta_path):
        sys.meta_path.insert(0, OldPaths())


def old_module_names(package: str) -> Callable[[str], Any]:
    """The ``__getattr__`` of a package that took the path of an old module (:data:`NOW_PACKAGES`):
    the old module's names, each with a warning (a renamed one by its new name). A submodule's name
    is left to the import system, and nothing is imported to answer a private name."""
    holder = NOW_PACKAGES[package]
    folder = os.path.dirname(getattr(sys.modules[package], "__file__", None) or "")
    old_modules = {path.rsplit(".", 1)[1] for path in MOVED_MODULES if path.rpartition(".")[0] == package}

    def __getattr__(name: str) -> Any:
        submodule = name in old_modules or (bool(folder) and (os.path.exists(os.path.join(folder, f"{name}.py"))
                                                              or os.path.isdir(os.path.join(folder, name))))
        if not name.startswith("_") and not submodule:
            module = importlib.import_module(holder)
            new = RENAMED.get(holder, {}).get(name, name)
            if hasattr(module, new):
                warn_moved(f"{package}.{name}", f"{holder}.{new}", stacklevel=2)
                return getattr(module, new)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
