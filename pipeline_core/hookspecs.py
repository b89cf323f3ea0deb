"""Every hook of the framework, in one module.

Registration hooks receive a ``register`` callable (``register(name, component)``) and add
components; lifecycle hooks are named for when they fire and observe a run through its
:class:`~pipeline_core.run.context.RunContext`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
import pluggy

if TYPE_CHECKING:
    from pipeline_core.components.registry import Register
    from pipeline_core.run.context import RunContext

PROJECT = "pipeline_core"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_datasets(register: Register) -> None:
    """Add dataset loaders: ``register(name, loader)`` with ``loader(context, **options) -> DataBundle``."""


@hookspec
def register_models(register: Register) -> None:
    """Add model factories: ``register(name, factory)`` with ``factory(spec, **options) -> nn.Module``."""


@hookspec
def register_optimizers(register: Register) -> None:
    """Add optimizers: ``register(name, factory)`` with ``factory(params, **options) -> Optimizer``."""


@hookspec
def register_schedulers(register: Register) -> None:
    """Add LR schedulers: ``register(name, factory)`` with ``factory(optimizer, plan, **options) -> LRSchedule``."""


@hookspec
def register_losses(register: Register) -> None:
    """Add losses: ``register(name, factory)`` with ``factory(**options) -> loss(outputs, targets)``."""


@hookspec
def register_metrics(register: Register) -> None:
    """Add metrics: ``register(name, metric)`` with ``metric(predictions, **options) -> float``."""


@hookspec
def register_exporters(register: Register) -> None:
    """Add export formats: ``register(name, factory)`` with ``factory(**options) -> Exporter``."""


@hookspec
def register_stages(register: Register) -> None:
    """Add pipeline stages: ``register(name, stage)`` with ``stage(run, **options) -> None``."""


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
    """Called after each training epoch with that epoch's row of the history (losses, metrics, lr)."""
