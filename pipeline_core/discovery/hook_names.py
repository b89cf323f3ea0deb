"""Hook implementations that no hook will ever call: a misspelled name, or a hook's name without
``@hookimpl``.

pluggy accepts a ``@hookimpl`` whose name matches no hook specification (it waits for a spec that
may come later, see ``PluginManager.check_pending``), and it ignores a function named like a hook
but not marked. Either way the plugin author only learns that their component is "unknown". Every
hook of this project is known when plugins load, so both are reported then, naming the plugin and
the nearest hook.
"""

from __future__ import annotations

import pluggy

from pipeline_core.components.options import suggest


def hook_names(manager: pluggy.PluginManager) -> list[str]:
    """The hooks plugins may implement: every hook with a specification."""
    return sorted(name for name, caller in vars(manager.hook).items() if not name.startswith("_") and caller.has_spec())


def misnamed_hooks(manager: pluggy.PluginManager, plugin_name: str) -> list[str]:
    """What is wrong with ``plugin_name``'s hook implementations, phrased for its author (empty: nothing)."""
    plugin = manager.get_plugin(plugin_name)
    known = hook_names(manager)
    found = []
    for caller in manager.get_hookcallers(plugin) or []:
        if caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.plugin_name == plugin_name and not impl.optionalhook:
                hint = suggest(caller.name, known)
                found.append(
                    f"plugin {plugin_name!r} implements {caller.name!r}, which is not a hook, so nothing would ever call it"
                    f"{'; ' + hint if hint else ''} (the hooks: docs/plugins.md)"
                )
    for name in known:
        function = getattr(plugin, name, None)
        if callable(function) and manager.parse_hookimpl_opts(plugin, name) is None:
            found.append(f"plugin {plugin_name!r} defines {name!r} without @hookimpl, so nothing would ever call it; "
                         "mark it with @pipeline_core.hookimpl")
    return found
