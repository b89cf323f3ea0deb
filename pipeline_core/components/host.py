"""What a run is given to call its plugins: a plugin manager together with the registry its plugins
filled. Built by :func:`pipeline_core.discovery.build.build_host`; kept apart from it so that the run
context, which holds a host, does not depend on how hosts are built (nor on the hook specs)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pluggy

from pipeline_core.components.registry import Registry


@dataclass(frozen=True)
class PluginInfo:
    """Where a loaded plugin came from, for ``pipeline plugins`` and error messages."""

    name: str
    source: str  # "builtin", "entry point", "pipeline file", or "given" (pipeline_core.testing)
    version: str
    distribution: str = ""
    error: str = ""  # why a broken plugin was left out (it failed to import, to register, or named no hook)


@dataclass
class Host:
    """A plugin manager together with the registry its plugins filled."""

    manager: pluggy.PluginManager
    registry: Registry
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    #: plugins left out because they broke, each with its ``error`` (``build_host(keep_broken=True)``)
    broken: dict[str, PluginInfo] = field(default_factory=dict)

    @property
    def hook(self) -> pluggy.HookRelay:
        return self.manager.hook
