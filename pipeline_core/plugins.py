"""Builds the plugin manager: built-in plugins, entry points, and modules a TOML file names.

A factory rather than a module-level singleton (pluggy's ``get_plugin_manager``, kedro's
``_create_hook_manager``), so each CLI call and each test gets a fresh manager and registry.
Built-ins are registered explicitly, through the same hooks as third-party plugins (llm's
``DEFAULT_PLUGINS``). Environment variables limit what loads:

* ``PIPELINE_CORE_PLUGINS=a,b`` loads only the named built-in and entry-point plugins;
* ``PIPELINE_CORE_BLOCK_PLUGINS=a,b`` never loads the named ones;
* ``PIPELINE_CORE_TRACE_HOOKS=1`` prints every hook call (and each plugin's answer) to stderr.

Plugins named in a TOML file's ``[pipeline] plugins`` always load: the file asked for them.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pluggy

from pipeline_core import hookspecs
from pipeline_core.errors import PluginError
from pipeline_core.options import suggest
from pipeline_core.registry import KINDS, Register, Registry

ENTRY_POINT_GROUP = "pipeline_core"
ONLY_ENV = "PIPELINE_CORE_PLUGINS"
BLOCK_ENV = "PIPELINE_CORE_BLOCK_PLUGINS"
TRACE_ENV = "PIPELINE_CORE_TRACE_HOOKS"


@dataclass(frozen=True)
class PluginInfo:
    """Where a loaded plugin came from, for ``pipeline plugins`` and error messages."""

    name: str
    source: str  # "builtin", "entry point", or "pipeline file"
    version: str
    distribution: str = ""


@dataclass
class Host:
    """A plugin manager together with the registry its plugins filled."""

    manager: pluggy.PluginManager
    registry: Registry
    plugins: dict[str, PluginInfo] = field(default_factory=dict)

    @property
    def hook(self) -> pluggy.HookRelay:
        return self.manager.hook


def _names_from_env(variable: str) -> set[str] | None:
    raw = os.environ.get(variable)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def _project_version() -> str:
    try:
        return importlib.metadata.version("pipeline-core")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def import_plugin(name: str, what: str) -> ModuleType:
    """Import a plugin module, re-raising any failure as a :class:`PluginError` that names it."""
    try:
        return importlib.import_module(name)
    except Exception as error:
        raise PluginError(f"{what} {name!r} failed to import: {type(error).__name__}: {error}") from error


def _import_file(path: Path, reference: str) -> ModuleType:
    module_name = f"pipeline_core_local_{path.stem}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin file {reference!r} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[module_name]
        raise PluginError(
            f"plugin file {reference!r} failed to import: {type(error).__name__}: {error}"
        ) from error
    return module


def _load_local(reference: str, base_dir: Path) -> ModuleType:
    """A TOML ``plugins`` entry: a ``.py`` path (relative to the TOML file) or a module name."""
    if reference.endswith(".py") or "/" in reference or os.sep in reference:
        path = Path(reference)
        path = path if path.is_absolute() else base_dir / path
        if not path.is_file():
            raise PluginError(f"plugin file {reference!r} not found (looked for {path})")
        return _import_file(path, reference)
    sys.path.insert(0, str(base_dir))
    try:
        return import_plugin(reference, "plugin module")
    finally:
        sys.path.remove(str(base_dir))


def _register(manager: pluggy.PluginManager, module: object, info: PluginInfo, host: Host) -> None:
    if manager.get_plugin(info.name) is not None:
        return  # the same module named twice (e.g. an entry point also listed in a TOML file)
    try:
        manager.register(module, name=info.name)
    except Exception as error:  # pluggy rejects unknown hooks and bad signatures
        raise PluginError(f"plugin {info.name!r} cannot be registered: {error}") from error
    host.plugins[info.name] = info


def _tracing() -> bool:
    return os.environ.get(TRACE_ENV, "") not in ("", "0")


def _trace(message: str) -> None:
    sys.stderr.write(f"[hooks] {message}\n")


def _fill_registry(host: Host) -> None:
    """Call each plugin's ``register_*`` hooks one plugin at a time, so each component has an owner."""
    for kind, (plural, _) in KINDS.items():
        caller = getattr(host.hook, f"register_{plural}")
        for impl in caller.get_hookimpls():  # in registration order
            if _tracing():
                _trace(f"register_{plural} → {impl.plugin_name}")
            try:
                impl.function(register=Register(host.registry, kind, impl.plugin_name))
            except PluginError:
                raise
            except Exception as error:
                raise PluginError(
                    f"plugin {impl.plugin_name!r} failed in register_{plural}: {type(error).__name__}: {error}"
                ) from error


def build_host(
    local_plugins: Iterable[str] = (),
    base_dir: Path | None = None,
    source: str = "",
    disabled: Iterable[str] = (),
) -> Host:
    """A fresh plugin manager with built-ins, entry points and ``local_plugins``, and its registry.

    ``local_plugins`` are ``.py`` paths (relative to ``base_dir``) or module names; ``disabled`` names
    built-in or entry-point plugins this host must not load. Both come from a pipeline file, named by
    ``source`` in error messages."""
    where = f"{source}: " if source else ""
    from plugins import DEFAULT_PLUGINS

    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    host = Host(manager, Registry())
    only, blocked = _names_from_env(ONLY_ENV), (_names_from_env(BLOCK_ENV) or set()) | set(disabled)
    entry_points = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    known = [*DEFAULT_PLUGINS, *(ep.name for ep in entry_points)]
    for name in disabled:
        if name not in known:
            hint = suggest(name, known)
            raise PluginError(
                f"{where}pipeline.disable_plugins: no plugin named {name!r}{'; ' + hint if hint else ''} (see `pipeline plugins`)"
            )

    def wanted(name: str) -> bool:
        return name not in blocked and (only is None or name in only)

    version = _project_version()
    for module_name in DEFAULT_PLUGINS:
        if wanted(module_name):
            module = import_plugin(module_name, "built-in plugin")
            _register(manager, module, PluginInfo(module_name, "builtin", version, "pipeline-core"), host)

    for entry_point in entry_points:
        if not wanted(entry_point.name):
            continue
        try:
            plugin = entry_point.load()
        except Exception as error:
            raise PluginError(
                f"plugin {entry_point.name!r} (entry point {entry_point.value!r}) failed to import: "
                f"{type(error).__name__}: {error}"
            ) from error
        dist = entry_point.dist
        info = PluginInfo(
            entry_point.name,
            "entry point",
            dist.version if dist else "unknown",
            dist.metadata["Name"] if dist else "",
        )
        _register(manager, plugin, info, host)

    for reference in local_plugins:
        if reference in blocked:
            continue
        try:
            module = _load_local(reference, base_dir or Path.cwd())
        except PluginError as error:
            raise PluginError(f"{where}pipeline.plugins: {error}") from error
        _register(manager, module, PluginInfo(reference, "pipeline file", "local"), host)

    _fill_registry(host)
    if _tracing():
        manager.add_hookcall_monitoring(_trace_call, lambda outcome, name, impls, kwargs: None)
    return host


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _trace_call(hook_name: str, hook_impls: list[pluggy.HookImpl], kwargs: dict[str, object]) -> None:
    """One line per hook call: the arguments, shortened, and the plugins that implement it."""
    arguments = ", ".join(f"{key}={_short(value)}" for key, value in kwargs.items())
    plugins = ", ".join(impl.plugin_name for impl in reversed(hook_impls)) or "no plugin"
    _trace(f"{hook_name}({arguments}) → {plugins}")
