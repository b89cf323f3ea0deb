"""Every component by kind and name, and the ``register`` callback that checks each one as it arrives.

A ``register_*`` hook receives a :class:`Register` bound to one plugin, so a duplicate name is an
error that names both plugins and a malformed component is an error that names its plugin (tox's
register object, not llm's silent suffixes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pipeline_core.components.options import Schema, suggest
from pipeline_core.errors import PluginError

#: Component kinds, the plural used in messages, and how many positional context arguments the host
#: passes when it calls one (everything else a component takes is a keyword-only option).
KINDS: dict[str, tuple[str, int]] = {
    "dataset": ("datasets", 1),  # (context: DatasetContext) -> DataBundle
    "model": ("models", 1),  # (spec: DataSpec) -> nn.Module
    "optimizer": ("optimizers", 1),  # (params: iterable of parameters) -> torch.optim.Optimizer
    "loss": ("losses", 0),  # () -> nn.Module computing loss(outputs, targets)
    "metric": ("metrics", 1),  # (predictions: Predictions) -> float
    "scheduler": ("schedulers", 2),  # (optimizer, plan: TrainingPlan) -> LRSchedule
    "exporter": ("exporters", 0),  # () -> Exporter
    "stage": ("stages", 1),  # (run: RunContext) -> None
}

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: Option names a component of a kind may not declare: the host reads these keys of its table
#: (``[data] load, memory_limit, workers, prefetch``: :mod:`pipeline_core.config.data_section`).
RESERVED_OPTIONS: dict[str, tuple[str, ...]] = {"dataset": ("load", "memory_limit", "workers", "prefetch")}


@dataclass(frozen=True)
class Component:
    """A registered component: what to call, who registered it, and its options schema."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    options: Schema
    description: str = ""
    check: Callable[..., None] | None = None
    #: a dataset's ``spec(context, **options) -> DataSpec``: the spec its bundle will have, without loading it
    spec: Callable[..., Any] | None = None
    #: a stage's requirements and results, by name (``data``, ``model``, ...): the stage order is checked with them
    needs: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()

    def problems(self, options: dict[str, Any]) -> list[str]:
        """Cross-option rules the types cannot express (``check`` raises ValueError to report one)."""
        if self.check is None:
            return []
        try:
            self.check(**options)
        except ValueError as error:
            return [str(error)]
        return []


@dataclass
class Registry:
    """Components of every kind, filled by the ``register_*`` hooks of all loaded plugins."""

    components: dict[str, dict[str, Component]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )

    def add(
        self,
        kind: str,
        name: str,
        factory: Callable[..., Any],
        plugin: str,
        description: str = "",
        check: Callable[..., None] | None = None,
        *,
        spec: Callable[..., Any] | None = None,
        needs: tuple[str, ...] = (),
        provides: tuple[str, ...] = (),
    ) -> None:
        """Check and store one component; raises :class:`PluginError` naming the plugin at fault."""
        arity = KINDS[kind][1]
        if not isinstance(name, str) or not _NAME.match(name):
            raise PluginError(
                f"plugin {plugin!r} registered a {kind} named {name!r}: names are lower-case "
                "letters, digits and underscores, starting with a letter"
            )
        if not callable(factory):
            raise PluginError(f"plugin {plugin!r} registered {kind} {name!r} with a non-callable {factory!r}")
        existing = self.components[kind].get(name)
        if existing is not None:
            raise PluginError(
                f"{kind} {name!r} is registered twice: by plugin {existing.plugin!r} and by plugin "
                f"{plugin!r}; rename one, or block one plugin with PIPELINE_CORE_BLOCK_PLUGINS"
            )
        try:
            schema = Schema.from_signature(factory, arity, owner=f"{kind} {name!r} of plugin {plugin!r}")
        except TypeError as error:
            raise PluginError(str(error)) from error
        taken = [option for option in schema.names if option in RESERVED_OPTIONS.get(kind, ())]
        if taken:
            raise PluginError(
                f"{kind} {name!r} of plugin {plugin!r} declares option(s) {', '.join(map(repr, taken))}, which the host reads "
                f"from the same table (reserved: {', '.join(RESERVED_OPTIONS[kind])}); rename them"
            )
        text = description or next(iter((factory.__doc__ or "").strip().splitlines()), "")
        check = check if check is not None else getattr(factory, "pipeline_check", None)
        if check is not None and not callable(check):
            raise PluginError(f"plugin {plugin!r} gave {kind} {name!r} a non-callable check {check!r}")
        owner = f"plugin {plugin!r} gave {kind} {name!r}"
        if spec is not None and (kind != "dataset" or not callable(spec)):
            raise PluginError(f"{owner} spec={spec!r}: only a dataset takes a spec, a callable (context, **options) -> DataSpec")
        for what, names in (("needs", needs), ("provides", provides)):
            if names and kind != "stage":
                raise PluginError(f"{owner} {what}={names!r}: only a stage takes {what}")
            if not isinstance(names, (tuple, list)) or not all(isinstance(n, str) and _NAME.match(n) for n in names):
                raise PluginError(f"{owner} {what}={names!r}: expected a tuple of lower-case names, such as ('data', 'model')")
        self.components[kind][name] = Component(kind, name, factory, plugin, schema, text, check, spec, tuple(needs), tuple(provides))

    def get(self, kind: str, name: str) -> Component:
        """The component, or a :class:`KeyError` whose message lists the names that do exist."""
        try:
            return self.components[kind][name]
        except KeyError:
            raise KeyError(self.unknown_message(kind, name)) from None

    def unknown_message(self, kind: str, name: str) -> str:
        plural = KINDS[kind][0]
        available = sorted(self.components[kind])
        hint = suggest(str(name), available)
        listing = ", ".join(available) if available else "none are registered"
        return f"unknown {kind} {name!r}{'; ' + hint if hint else ''} (available {plural}: {listing})"

    def names(self, kind: str) -> list[str]:
        return sorted(self.components[kind])

    def describe(self, kind: str, name: str) -> str:
        """``model 'wide' (plugin 'wide.py')``: a component and who registered it, for messages."""
        return f"{kind} {name!r} (plugin {self.get(kind, name).plugin!r})"

    def discard(self, plugin: str) -> None:
        """Forget every component of ``plugin`` (one that broke while registering them)."""
        for kind in KINDS:
            self.components[kind] = {name: c for name, c in self.components[kind].items() if c.plugin != plugin}

    def by_plugin(self, plugin: str) -> Iterator[Component]:
        for kind in KINDS:
            for component in self.components[kind].values():
                if component.plugin == plugin:
                    yield component


class Register:
    """The callable a ``register_*`` hook receives.

    ``register(name, component, description="", check=None)``: ``component`` is called with the
    host's context arguments and the validated options; ``check(**options)``, if given, runs at
    validation time and raises ``ValueError`` for a combination of options that cannot work. Without
    one, a component's own ``pipeline_check`` attribute is used (:func:`~pipeline_core.split_options`
    gives its loaders one).

    A dataset may add ``spec=``, a callable ``(context, **options) -> DataSpec`` that says what its
    bundle's spec will be without loading any rows, so ``pipeline validate`` can build the model and
    check its outputs. A stage may add ``needs=`` and ``provides=``, tuples of names (``"data"``,
    ``"model"``, ...), so the validator refuses a stage list in an impossible order.
    """

    def __init__(self, registry: Registry, kind: str, plugin: str) -> None:
        self._registry, self.kind, self.plugin = registry, kind, plugin

    def __call__(
        self,
        name: str,
        component: Callable[..., Any],
        *,
        description: str = "",
        check: Callable[..., None] | None = None,
        spec: Callable[..., Any] | None = None,
        needs: tuple[str, ...] = (),
        provides: tuple[str, ...] = (),
    ) -> None:
        self._registry.add(self.kind, name, component, self.plugin, description, check, spec=spec, needs=needs, provides=provides)
