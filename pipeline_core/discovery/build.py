"""Builds the plugin manager: built-in plugins, entry points, and modules a TOML file names.

A factory rather than a module-level singleton (pluggy's ``get_plugin_manager``, kedro's
``_create_hook_manager``), so each CLI call and each test gets a fresh manager and registry.
Built-ins are registered explicitly, through the same hooks as third-party plugins (llm's
``DEFAULT_PLUGINS``), found by name (:mod:`pipeline_core.discovery.builtins`): the core never imports them
itself. Environment variables limit what loads (built-ins by any of their names):

* ``PIPELINE_CORE_PLUGINS=a,b`` loads only the named built-in and entry-point plugins;
* ``PIPELINE_CORE_BLOCK_PLUGINS=a,b`` never loads the named ones;
* ``PIPELINE_CORE_TRACE_HOOKS=1`` prints every hook call (and each plugin's answer) to stderr.

Plugins named in a TOML file's ``[pipeline] plugins`` always load: the file asked for them.

One broken plugin does not hide the others: every plugin is loaded, the broken ones are left out
with their errors (``Host.broken``), and a command that needs the plugins then stops with all of
them and the ``PIPELINE_CORE_BLOCK_PLUGINS=...`` setting that runs without them; ``pipeline
plugins`` lists them instead.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType

import pluggy

from pipeline_core import hookspecs
from pipeline_core.components import kinds
from pipeline_core.components.host import Host, PluginInfo
from pipeline_core.components.options import suggest
from pipeline_core.components.registry import Registry
from pipeline_core.discovery import builtins
from pipeline_core.discovery.hook_names import misnamed_hooks
from pipeline_core.errors import PluginError

ENTRY_POINT_GROUP = builtins.ENTRY_POINT_GROUP
ONLY_ENV = "PIPELINE_CORE_PLUGINS"
BLOCK_ENV = "PIPELINE_CORE_BLOCK_PLUGINS"
TRACE_ENV = "PIPELINE_CORE_TRACE_HOOKS"


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


def import_plugin(module: str, what: str, name: str = "") -> ModuleType:
    """Import a plugin module, re-raising any failure as a :class:`PluginError` that names the plugin."""
    try:
        return importlib.import_module(module)
    except Exception as error:
        raise PluginError(f"{what} {name or module!r} failed to import: {type(error).__name__}: {error}") from error


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


def _load_local(reference: str, base_dir: Path, where: str = "") -> ModuleType:
    """A TOML ``plugins`` entry: a ``.py`` path (relative to the TOML file), a module name, or an
    optional built-in (``plugins.trackers.tensorboard``). A failure names ``where`` (``FILE: ``) and
    the key that asked for it."""
    try:
        return _import_local(reference, base_dir)
    except PluginError as error:
        raise PluginError(f"{where}pipeline.plugins: {error}") from error


def _import_local(reference: str, base_dir: Path) -> ModuleType:
    if builtins.is_builtin(reference):
        return import_plugin(builtins.module_of(reference), "plugin module", reference)
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
    if manager.get_plugin(info.name) is not None or manager.is_registered(module):
        return  # the same module named twice (e.g. an entry point also listed in a TOML file)
    try:
        manager.register(module, name=info.name)
    except Exception as error:  # pluggy rejects unknown hooks and bad signatures
        raise PluginError(f"plugin {info.name!r} cannot be registered: {error}") from error
    host.plugins[info.name] = info


def _load(host: Host, info: PluginInfo, load: Callable[[], object]) -> None:
    """Import a plugin with ``load`` and register it; a plugin that fails either way is kept in
    ``host.broken`` with its error, and the others load regardless."""
    try:
        _register(host.manager, load(), info, host)
    except PluginError as error:
        host.broken[info.name] = dataclasses.replace(info, error=str(error))


def _set_broken(host: Host, name: str, error: str) -> None:
    """Leave out a plugin that loaded but then broke: its components and hooks go with it."""
    info = host.plugins.pop(name)
    host.broken[name] = dataclasses.replace(info, error=error)
    host.registry.discard(name)
    host.manager.unregister(name=name)


def _check_hook_names(host: Host) -> None:
    for name in list(host.plugins):
        problems = misnamed_hooks(host.manager, name)
        if problems:
            _set_broken(host, name, "; ".join(problems))
    try:
        host.manager.check_pending()  # nothing unknown is left: the plugins that had it are out
    except pluggy.PluginValidationError as error:
        raise PluginError(str(error)) from error


def broken_message(host: Host) -> str:
    """Every broken plugin's error, and the setting that runs without the installed ones."""
    lines = [info.error for info in host.broken.values()]
    blockable = [name for name, info in host.broken.items() if info.source in ("builtin", "entry point")]
    if blockable:
        value = ",".join([*(os.environ.get(BLOCK_ENV) or "").split(","), *blockable]).strip(",")
        lines.append(
            f"to run without {'it' if len(blockable) == 1 else 'them'}, set {BLOCK_ENV}={value} "
            "(`pipeline plugins` lists every plugin and what broke)"
        )
    return "\n".join(lines)


def _tracing() -> bool:
    return os.environ.get(TRACE_ENV, "") not in ("", "0")


def _trace(message: str) -> None:
    sys.stderr.write(f"[hooks] {message}\n")


def _fill_registry(host: Host) -> None:
    """Call each plugin's registration hooks one plugin at a time, each with its kind's ``register``
    bound to the plugin, so each component has an owner."""
    for kind in kinds.ALL:
        for impl in getattr(host.hook, kind.hook).get_hookimpls():  # in registration order
            if _tracing():
                _trace(f"{kind.hook} → {impl.plugin_name}")
            try:
                impl.function(register=kind.register(host.registry, kind.name, impl.plugin_name))
            except PluginError as error:  # a malformed component, or a name another plugin has
                _set_broken(host, impl.plugin_name, str(error))
            except Exception as error:
                _set_broken(host, impl.plugin_name, f"plugin {impl.plugin_name!r} failed in {kind.hook}: {type(error).__name__}: {error}")


def build_host(
    local_plugins: Iterable[str] = (),
    base_dir: Path | None = None,
    source: str = "",
    disabled: Iterable[str] = (),
    given: Iterable[object] = (),
    keep_broken: bool = False,
) -> Host:
    """A fresh plugin manager with built-ins, entry points, ``local_plugins`` and ``given``, and its registry.

    ``local_plugins`` are ``.py`` paths (relative to ``base_dir``) or module names; ``disabled`` names
    built-in or entry-point plugins this host must not load. Both come from a pipeline file, named by
    ``source`` in error messages. ``given`` are plugin objects (modules, or objects with ``@hookimpl``
    methods) registered as they are, by :mod:`pipeline_core.testing`.

    A plugin that fails to import, to register its hooks or components (a name another plugin has),
    or that implements a hook that does not exist, is broken: every plugin is loaded regardless, and
    then a :class:`PluginError` lists the broken ones and names the setting that blocks them. With
    ``keep_broken`` the host is returned instead, without them, and ``host.broken`` says what broke
    (``pipeline plugins`` lists both)."""
    where = f"{source}: " if source else ""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    host = Host(manager, Registry())
    entry_points = builtins.plugin_entry_points()
    known = [*builtins.DEFAULT_PLUGINS, *(ep.name for ep in entry_points)]

    def resolved(name: str) -> str:
        """A plugin's name as loaded: an entry point by its own name, a built-in by any of its names."""
        return name if name in known else builtins.canonical(name)

    only = None if (listed := _names_from_env(ONLY_ENV)) is None else {resolved(name) for name in listed}
    blocked = {resolved(name) for name in [*(_names_from_env(BLOCK_ENV) or ()), *disabled]}
    for name in disabled:
        if resolved(name) not in known:
            hint = suggest(name, known)
            raise PluginError(
                f"{where}pipeline.disable_plugins: no plugin named {name!r}{'; ' + hint if hint else ''} (see `pipeline plugins`)"
            )

    def wanted(name: str) -> bool:
        return name not in blocked and (only is None or name in only)

    version = _project_version()
    for name in filter(wanted, builtins.DEFAULT_PLUGINS):
        _load(host, PluginInfo(name, "builtin", version, "pipeline-core"),
              functools.partial(import_plugin, builtins.module_of(name), "built-in plugin", name))
    for entry_point in entry_points:
        if wanted(entry_point.name):
            _load(host, _entry_point_info(entry_point), functools.partial(_load_entry_point, entry_point))
    for reference in local_plugins:
        if resolved(reference) not in blocked:
            _load(host, PluginInfo(builtins.canonical(reference), "pipeline file", "local"),
                  functools.partial(_load_local, reference, base_dir or Path.cwd(), where))
    for plugin in given:
        _load(host, PluginInfo(getattr(plugin, "__name__", None) or type(plugin).__name__, "given", "local"), lambda p=plugin: p)

    _check_hook_names(host)
    _fill_registry(host)
    if host.broken and not keep_broken:
        raise PluginError(broken_message(host))
    if _tracing():
        manager.add_hookcall_monitoring(_trace_call, lambda outcome, name, impls, kwargs: None)
    return host


def _load_entry_point(entry_point: importlib.metadata.EntryPoint) -> object:
    try:
        return entry_point.load()
    except Exception as error:
        raise PluginError(
            f"plugin {entry_point.name!r} (entry point {entry_point.value!r}) failed to import: "
            f"{type(error).__name__}: {error}"
        ) from error


def _entry_point_info(entry_point: importlib.metadata.EntryPoint) -> PluginInfo:
    dist = entry_point.dist
    return PluginInfo(entry_point.name, "entry point", dist.version if dist else "unknown", dist.metadata["Name"] if dist else "")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _trace_call(hook_name: str, hook_impls: list[pluggy.HookImpl], kwargs: dict[str, object]) -> None:
    """One line per hook call: the arguments, shortened, and the plugins that implement it."""
    arguments = ", ".join(f"{key}={_short(value)}" for key, value in kwargs.items())
    plugins = ", ".join(impl.plugin_name for impl in reversed(hook_impls)) or "no plugin"
    _trace(f"{hook_name}({arguments}) → {plugins}")
