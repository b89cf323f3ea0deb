"""Every hook of the framework, in one module.

Registration hooks receive their kind's ``register`` callable (``register(name, component)``) and
add components. There is one per component kind, made here from the kind's declaration in
:mod:`pipeline_core.components.kinds` (``register_datasets(register: RegisterDatasets) -> None``, ...),
so a kind is declared once. Lifecycle hooks are named for when they fire and observe a run through
its :class:`~pipeline_core.run.context.RunContext`.

The typed ``register`` callables are importable from here, to annotate a hook with its kind's:
``def register_datasets(register: RegisterDatasets)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import pluggy

from pipeline_core.components import kinds
from pipeline_core.components.kinds import (  # noqa: F401  (the registration hooks' annotations name them)
    Register,
    RegisterDatasets,
    RegisterExporters,
    RegisterLosses,
    RegisterMetrics,
    RegisterModels,
    RegisterOptimizers,
    RegisterPlots,
    RegisterSchedulers,
    RegisterStages,
    RegisterTrackers,
)

if TYPE_CHECKING:
    from pipeline_core.config.file import PipelineConfig
    from pipeline_core.run.context import RunContext

PROJECT = "pipeline_core"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


def _registration_hook(kind: kinds.Kind) -> Callable[..., None]:
    """``register_<plural>(register: Register<Plural>) -> None``, the hook that registers ``kind``."""

    def hook(register: Register) -> None:  # annotated below with the kind's own class
        ...

    hook.__name__ = hook.__qualname__ = kind.hook
    hook.__doc__ = kind.summary
    hook.__annotations__ = {"register": kind.register.__name__, "return": "None"}
    return hookspec(hook)


for _kind in kinds.ALL:
    globals()[_kind.hook] = _registration_hook(_kind)
del _kind


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``pipeline`` command line."""


@hookspec
def before_pipeline(run: RunContext) -> None:
    """Called once the config is validated and the run folder exists, before the first stage."""


@hookspec
def after_pipeline(run: RunContext) -> None:
    """Called after the last stage succeeded and the run folder is complete."""


@hookspec
def before_stage(run: RunContext, stage: str) -> None:
    """Called before each stage."""


@hookspec
def after_stage(run: RunContext, stage: str) -> None:
    """Called after each stage that succeeded."""


@hookspec
def on_stage_error(run: RunContext, stage: str, error: BaseException) -> None:
    """Called when a stage raised; the error is re-raised afterwards."""


@hookspec
def on_pipeline_error(run: RunContext, error: BaseException) -> None:
    """Called once when the run failed anywhere (a stage or a lifecycle hook); ``run.failure`` says where."""


@hookspec
def on_epoch_end(run: RunContext, epoch: int, metrics: dict[str, float]) -> None:
    """Called after each training epoch with that epoch's row of the history (losses, metrics, lr).
    The ``val_`` columns are in the rows of validated epochs: every epoch unless ``train.validate_every``
    (or a sweep's trial, see ``sweep.report_every``) says otherwise."""


@hookspec
def before_sweep(config: PipelineConfig, folder: Path, study: str) -> None:
    """Called once by ``pipeline sweep`` when it starts or continues study ``study`` (its folder ``folder``), before its trials."""


@hookspec
def after_sweep(config: PipelineConfig, folder: Path, study: str, record: dict[str, Any]) -> None:
    """Called once ``pipeline sweep`` wrote the study's results (``record`` is ``sweep.json``), even when no trial completed."""
