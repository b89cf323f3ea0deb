"""The component kinds, each declared once: the hook that registers it, the context the host passes
each component, what a component gives back, and the typed ``register`` callable the hook receives
(which says what else a component of the kind may be registered with).

Everything else is derived from these declarations: the registration hooks of
:mod:`pipeline_core.hookspecs`, the registry's kinds, the calls of ``build_host``, the plugin
guide's meta-tests. A new kind is one more :class:`Kind` in :data:`ALL` (and its ``Register*`` class).

Standard library only: the registry and the config sit on top of this module.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Never, Protocol

#: ``check(**options)`` raises ValueError for a combination of options that cannot work
Check = Callable[..., None]

#: the ``[data]`` keys the host reads for itself (:mod:`pipeline_core.config.data_section`): no dataset may take them as options
LOADING_KEYS: tuple[str, ...] = ("load", "memory_limit", "workers", "prefetch")


class Adds(Protocol):
    """What a ``register`` callable hands each component to (:class:`~pipeline_core.components.registry.Registry`)."""

    def add(self, kind: str, name: str, factory: Callable[..., Any], plugin: str, description: str = "",
            check: Check | None = None, **keywords: Any) -> None: ...


class Register:
    """The base of every kind's ``register`` callable: one plugin's components of one kind.

    ``register(name, component, *, description="", check=None)``: ``component`` is called with the
    host's context arguments and the validated options; ``check(**options)``, if given, runs at
    validation time and raises ``ValueError`` for a combination of options that cannot work. Without
    one, a component's own ``pipeline_check`` attribute is used (:func:`~pipeline_core.split_options`
    gives its loaders one).

    Each ``register_*`` hook receives its kind's own subclass (:class:`RegisterDatasets`, ...), typed
    with exactly what that kind takes: a dataset may add ``spec=``, a stage ``needs=`` and
    ``provides=``. A keyword that belongs to another kind is refused with an error that names the
    plugin and the kind that takes it."""

    def __init__(self, registry: Adds, kind: str, plugin: str) -> None:
        self._registry, self.kind, self.plugin = registry, kind, plugin

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of plugin {self.plugin!r}>"

    def __call__(self, name: str, component: Callable[..., Any], *, description: str = "", check: Check | None = None,
                 **keywords: Any) -> None:
        self._add(name, component, description, check, keywords)

    def _add(self, name: str, component: Callable[..., Any], description: str, check: Check | None, keywords: dict[str, Any]) -> None:
        unknown = [key for key in keywords if key not in TAKEN]
        if unknown:  # what Python says of an unexpected keyword: no kind takes it
            raise TypeError(f"{type(self).__name__}.__call__() got an unexpected keyword argument {unknown[0]!r}")
        self._registry.add(self.kind, name, component, self.plugin, description, check, **keywords)


class RegisterDatasets(Register):
    """``register(name, loader, *, description="", check=None, spec=None)`` for ``register_datasets``.

    ``spec``, a callable called like the loader (``spec(context, **options) -> DataSpec``), says
    what the loaded data's spec will be without loading any rows, so ``pipeline validate`` can build
    the model and check its outputs."""

    def __call__(self, name: str, component: Callable[..., Any], *, description: str = "", check: Check | None = None,
                 spec: Callable[..., Any] | None = None, **misplaced: Never) -> None:
        self._add(name, component, description, check, {"spec": spec, **misplaced})


class RegisterModels(Register):
    """``register(name, factory, *, description="", check=None)`` for ``register_models``."""

    def __call__(self, name: str, component: Callable[..., Any], *, description: str = "", check: Check | None = None,
                 **misplaced: Never) -> None:
        self._add(name, component, description, check, misplaced)


class RegisterOptimizers(Register):
    """``register(name, factory, *, description="", check=None, default=False)`` for ``register_optimizers``.

    ``default=True`` makes it the optimizer of a pipeline file without ``[train.optimizer]``, with
    its options' defaults (one optimizer may be the default)."""

    def __call__(self, name: str, component: Callable[..., Any], *, description: str = "", check: Check | None = None,
                 default: bool = False, **misplaced: Never) -> None:
        self._add(name, component, description, check, {"default": default, **misplaced})


class RegisterSchedulers(Register):
    """``register(name, factory, *, description="", check=None)`` for ``register_schedulers``."""

    def __call__(self, name: str, component: Callable[..., Any], *, description: str = "", check: Check | None = None,
                 **misplaced: Never) -> None:
        self._add(name, component, description, check, misplaced)


class RegisterLosses(Register):
    """``register(name, factory, *, description="", check=None, default_for=())`` for ``register_losses``.

    ``default_for`` names the tasks (``multiclass``, ``binary``, ``regression``) this loss is the
    default of: a pipeline file without ``[train.loss]`` trains with the loss of its data's task."""

    def __call__(self, name: str, component: Callable[..., Any], *, description: str = "", check: Check | None = None,
                 default_for: tuple[str, ...] = (), **misplaced: Never) -> None:
        self._add(name, component, description, check, {"default_for": default_for, **misplaced})


class RegisterMetrics(Register):
    """``register(name, metric, *, description="", check=None)`` for ``register_metrics``."""

    def __call__(self, name: str, component: Callable[..., Any], *, description: str = "", check: Check | None = None,
                 **misplaced: Never) -> None:
        self._add(name, component, description, check, misplaced)


class RegisterExporters(Register):
    """``register(name, factory, *, description="", check=None)`` for ``register_exporters``."""

    def __call__(self, name: str, component: Callable[..., Any], *, description: str = "", check: Check | None = None,
                 **misplaced: Never) -> None:
        self._add(name, component, description, check, misplaced)


class RegisterStages(Register):
    """``register(name, stage, *, description="", check=None, needs=(), provides=())`` for ``register_stages``.

    ``needs`` and ``provides`` are names of what stages hand each other (the built-ins use ``data``,
    ``model``, ``training``, ``metrics``, ``bundle``), so the validator refuses a stage list in an
    impossible order before any data is loaded."""

    def __call__(self, name: str, component: Callable[..., Any], *, description: str = "", check: Check | None = None,
                 needs: tuple[str, ...] = (), provides: tuple[str, ...] = (), **misplaced: Never) -> None:
        self._add(name, component, description, check, {"needs": needs, "provides": provides, **misplaced})


class RegisterPlots(Register):
    """``register(name, plot, *, description="")`` for ``register_plots``: the evaluate stage calls
    every registered plot with the run. No table configures a plot, so it takes no ``check``, and an
    option it declares needs a default."""

    def __call__(self, name: str, component: Callable[..., Any], *, description: str = "", **misplaced: Never) -> None:
        self._add(name, component, description, None, misplaced)


class RegisterTrackers(Register):
    """``register(name, settings, *, description="", check=None)`` for ``register_trackers``: a
    tracker is switched on by a ``[trackers.<name>]`` table, whose options ``settings(**options)``
    declares and turns into the tracker's settings; the tracker itself works on the lifecycle hooks."""

    def __call__(self, name: str, component: Callable[..., Any], *, description: str = "", check: Check | None = None,
                 **misplaced: Never) -> None:
        self._add(name, component, description, check, misplaced)


@dataclass(frozen=True)
class Kind:
    """One kind of component, declared once."""

    #: the kind's name in messages and in the registry: ``dataset``
    name: str
    #: the plural: the hook is ``register_<plural>``, and messages list the ``available <plural>``
    plural: str
    #: what its hook adds, for the hook's docstring: ``dataset loaders``
    adds: str
    #: what a component is called in the hook's docstring: ``loader``, ``factory``, ``metric``, ...
    role: str
    #: the context the host passes each component, positionally, as ``name: Type`` (its arity)
    receives: tuple[str, ...]
    #: what a component gives back
    returns: str
    #: the typed ``register`` callable the hook receives
    register: type[Register]
    #: option names a component may not declare: the host reads these keys of its table
    reserved: tuple[str, ...] = ()
    #: whether a pipeline file sets its options (a table names it); a plot's come from its defaults alone
    configured: bool = True

    @property
    def hook(self) -> str:
        """``register_datasets``: the hook that registers this kind."""
        return f"register_{self.plural}"

    @property
    def arity(self) -> int:
        """How many positional context arguments the host passes a component."""
        return len(self.receives)

    @functools.cached_property
    def keywords(self) -> tuple[str, ...]:
        """What else a component of this kind may be registered with (``spec``; ``needs``, ``provides``),
        read from its ``register`` callable's typed signature."""
        parameters = inspect.signature(self.register.__call__).parameters.values()
        return tuple(p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.name not in ("description", "check"))

    @property
    def call(self) -> str:
        """How the host calls a component: ``loader(context: DatasetContext, **options) -> LoadedData``."""
        arguments = [*self.receives, "**options"] if self.configured else list(self.receives)
        return f"{self.role}({', '.join(arguments)}) -> {self.returns}"

    @property
    def summary(self) -> str:
        """The registration hook's docstring."""
        short = ", ".join([*(part.split(":")[0] for part in self.receives), *(["**options"] if self.configured else [])])
        return f"Add {self.adds}: ``register(name, {self.role})`` with ``{self.role}({short}) -> {self.returns}``."


#: Every kind, in the order the host fills the registry and ``pipeline plugins`` lists components.
ALL: tuple[Kind, ...] = (
    Kind("dataset", "datasets", "dataset loaders", "loader", ("context: DatasetContext",), "LoadedData", RegisterDatasets,
         reserved=LOADING_KEYS),
    Kind("model", "models", "model factories", "factory", ("spec: DataSpec",), "nn.Module", RegisterModels),
    Kind("optimizer", "optimizers", "optimizers", "factory", ("params",), "torch.optim.Optimizer", RegisterOptimizers),
    Kind("loss", "losses", "losses", "factory", (), "loss(outputs, targets) -> Tensor", RegisterLosses),
    Kind("metric", "metrics", "metrics", "metric", ("predictions: Predictions",), "float", RegisterMetrics),
    Kind("scheduler", "schedulers", "LR schedulers", "factory", ("optimizer", "plan: TrainingPlan"), "LRSchedule", RegisterSchedulers),
    Kind("exporter", "exporters", "export formats", "factory", (), "Exporter", RegisterExporters),
    Kind("stage", "stages", "pipeline stages", "stage", ("run: RunContext",), "None", RegisterStages),
    Kind("plot", "plots", "plots, drawn by the evaluate stage", "plot", ("run: RunContext",), "None", RegisterPlots, configured=False),
    Kind("tracker", "trackers", "experiment trackers, switched on by a [trackers.<name>] table", "settings", (), "its settings",
         RegisterTrackers),
)

_BY_NAME = {kind.name: kind for kind in ALL}
#: every keyword some kind's ``register`` takes besides ``description`` and ``check``
TAKEN = frozenset(keyword for kind in ALL for keyword in kind.keywords)


def of(name: str) -> Kind:
    """The kind named ``name`` (``dataset``); a KeyError for a name that is no kind."""
    return _BY_NAME[name]
