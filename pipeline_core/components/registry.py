"""Every component by kind and name, checked as it arrives.

A ``register_*`` hook receives its kind's ``register`` callable (:mod:`pipeline_core.components.kinds`)
bound to one plugin, so a duplicate name is an error that names both plugins and a malformed
component is an error that names its plugin (tox's register object, not llm's silent suffixes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pipeline_core.components import kinds
from pipeline_core.components.kinds import Register
from pipeline_core.components.options import Schema, suggest
from pipeline_core.errors import PluginError

__all__ = ["KINDS", "RESERVED_OPTIONS", "Component", "Register", "Registry"]

#: Each kind's plural and how many positional context arguments the host passes a component, as
#: before the kinds were declared in :mod:`pipeline_core.components.kinds` (derived from there).
KINDS: dict[str, tuple[str, int]] = {kind.name: (kind.plural, kind.arity) for kind in kinds.ALL}

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: Option names a component of a kind may not declare: the host reads these keys of its table
#: (``[data] load, memory_limit, workers, prefetch``: :mod:`pipeline_core.config.data_section`).
RESERVED_OPTIONS: dict[str, tuple[str, ...]] = {kind.name: kind.reserved for kind in kinds.ALL if kind.reserved}


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
    #: a dataset's ``spec(context, **options) -> DataSpec``: the spec of the data it loads, without loading it
    spec: Callable[..., Any] | None = None
    #: a stage's requirements and results, by name (``data``, ``model``, ...): the stage order is checked with them
    needs: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    #: a loss's tasks it is the default of; an optimizer's being the default (``[train]`` without its table)
    default_for: tuple[str, ...] = ()
    default: bool = False

    def problems(self, options: dict[str, Any]) -> list[str]:
        """Cross-option rules the types cannot express (``check`` raises ValueError to report one)."""
        if self.check is None:
            return []
        try:
            self.check(**options)
        except ValueError as error:
            return [str(error)]
        return []


def _options(kind: kinds.Kind, name: str, factory: Callable[..., Any], plugin: str) -> Schema:
    """The options schema read from ``factory``'s signature, or a :class:`PluginError` saying what is wrong with it."""
    try:
        schema = Schema.from_signature(factory, kind.arity, owner=f"{kind.name} {name!r} of plugin {plugin!r}")
    except TypeError as error:
        raise PluginError(str(error)) from error
    taken = [option for option in schema.names if option in kind.reserved]
    if taken:
        raise PluginError(
            f"{kind.name} {name!r} of plugin {plugin!r} declares option(s) {', '.join(map(repr, taken))}, which the host reads "
            f"from the same table (reserved: {', '.join(kind.reserved)}); rename them"
        )
    required = [option for option in schema.names if option not in schema.defaults]
    if required and not kind.configured:
        raise PluginError(
            f"{kind.name} {name!r} of plugin {plugin!r} has required option(s) {', '.join(map(repr, required))}: "
            f"no table configures a {kind.name}, so every option needs a default"
        )
    return schema


def _taker(keyword: str) -> str:
    """The kind that takes ``keyword`` (``dataset`` for ``spec``)."""
    return next(kind.name for kind in kinds.ALL if keyword in kind.keywords)


def _check_keywords(kind: kinds.Kind, owner: str, spec: Any, needs: Any, provides: Any) -> None:
    """What only some kinds take (a dataset's ``spec``, a stage's ``needs`` and ``provides``): given
    to the right kind, and of the right shape."""
    if spec is not None and ("spec" not in kind.keywords or not callable(spec)):
        raise PluginError(f"{owner} spec={spec!r}: only a {_taker('spec')} takes a spec, a callable (context, **options) -> DataSpec")
    for what, names in (("needs", needs), ("provides", provides)):
        if names and what not in kind.keywords:
            raise PluginError(f"{owner} {what}={names!r}: only a {_taker(what)} takes {what}")
        if not isinstance(names, (tuple, list)) or not all(isinstance(n, str) and _NAME.match(n) for n in names):
            raise PluginError(f"{owner} {what}={names!r}: expected a tuple of lower-case names, such as ('data', 'model')")


#: the tasks a loss may be the default of (``DataSpec.task``)
TASK_NAMES = ("multiclass", "binary", "regression")


def _check_defaults(owner: str, default_for: Any, default: Any) -> None:
    if not isinstance(default_for, (tuple, list)) or not all(task in TASK_NAMES for task in default_for):
        raise PluginError(f"{owner} default_for={default_for!r}: expected a tuple of tasks from {TASK_NAMES}")
    if not isinstance(default, bool):
        raise PluginError(f"{owner} default={default!r}: expected True or False")


@dataclass
class Registry:
    """Components of every kind, filled by the ``register_*`` hooks of all loaded plugins."""

    components: dict[str, dict[str, Component]] = field(
        default_factory=lambda: {kind.name: {} for kind in kinds.ALL}
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
        default_for: tuple[str, ...] = (),
        default: bool = False,
    ) -> None:
        """Check and store one component; raises :class:`PluginError` naming the plugin at fault."""
        declared = kinds.of(kind)
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
        schema = _options(declared, name, factory, plugin)
        text = description or next(iter((factory.__doc__ or "").strip().splitlines()), "")
        check = check if check is not None else getattr(factory, "pipeline_check", None)
        if check is not None and not callable(check):
            raise PluginError(f"plugin {plugin!r} gave {kind} {name!r} a non-callable check {check!r}")
        _check_keywords(declared, f"plugin {plugin!r} gave {kind} {name!r}", spec, needs, provides)
        _check_defaults(f"plugin {plugin!r} gave {kind} {name!r}", default_for, default)
        self.components[kind][name] = Component(kind, name, factory, plugin, schema, text, check, spec, tuple(needs), tuple(provides),
                                                 tuple(default_for), bool(default))

    def get(self, kind: str, name: str) -> Component:
        """The component, or a :class:`KeyError` whose message lists the names that do exist."""
        try:
            return self.components[kind][name]
        except KeyError:
            raise KeyError(self.unknown_message(kind, name)) from None

    def unknown_message(self, kind: str, name: str) -> str:
        plural = kinds.of(kind).plural
        available = sorted(self.components[kind])
        hint = suggest(str(name), available)
        listing = ", ".join(available) if available else "none are registered"
        return f"unknown {kind} {name!r}{'; ' + hint if hint else ''} (available {plural}: {listing})"

    def defaults(self, kind: str, task: str | None = None) -> list[Component]:
        """The components of ``kind`` registered as its default: a loss ``default_for`` ``task``, an optimizer ``default``."""
        return [c for c in self.components[kind].values() if (task in c.default_for if task is not None else c.default)]

    def names(self, kind: str) -> list[str]:
        return sorted(self.components[kind])

    def of_kind(self, kind: str) -> list[Component]:
        """Every component of ``kind``, in the order the plugins registered them."""
        return list(self.components[kind].values())

    def describe(self, kind: str, name: str) -> str:
        """``model 'wide' (plugin 'wide.py')``: a component and who registered it, for messages."""
        return f"{kind} {name!r} (plugin {self.get(kind, name).plugin!r})"

    def discard(self, plugin: str) -> None:
        """Forget every component of ``plugin`` (one that broke while registering them)."""
        for kind in self.components:
            self.components[kind] = {name: c for name, c in self.components[kind].items() if c.plugin != plugin}

    def by_plugin(self, plugin: str) -> Iterator[Component]:
        for kind in self.components:
            for component in self.components[kind].values():
                if component.plugin == plugin:
                    yield component
