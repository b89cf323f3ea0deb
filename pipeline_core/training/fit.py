"""``fit(run)``: the training engine applied to a run, as the ``train`` stage uses it.

It builds what ``[train]`` names (optimizer, loss, schedule, early stopping), validates on the
validation split each epoch (or every ``validate_every`` epochs), continues from the run folder's
last checkpoint when resuming, turns SIGINT/SIGTERM into a checkpoint and a clean stop, and fires
``on_epoch_end`` with each history row.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pipeline_core.config.train_section import VALIDATION_PREFIX, TrainSection
from pipeline_core.errors import ConfigError, PipelineError, RunFailed
from pipeline_core.model.evaluation import Evaluator
from pipeline_core.run import checkpoint
from pipeline_core.run.results import TrainingSummary, scalars
from pipeline_core.run.signals import stop_on_signals
from pipeline_core.training.checkpointing import NONE_YET
from pipeline_core.training.parallel import batchnorm_synchronized
from pipeline_core.training.schedule import LRSchedule, TrainingPlan
from pipeline_core.training.threads import choose_threads
from pipeline_core.training.trainer import Trainer

if TYPE_CHECKING:
    from pipeline_core.run.context import RunContext


def fit(run: RunContext) -> TrainingSummary:
    """Train ``run.model`` on the train split as ``[train]`` says; ``run.history`` gets a row per epoch
    as it ends (also when training fails part-way). Returns what training actually did."""
    settings = run.config.train
    if settings is None:
        raise PipelineError("training needs a [train] section (epochs, batch_size, optimizer and loss)")
    data, model = run.require_data("train"), run.require_model("train")
    evaluator = Evaluator.for_run(run, data.spec.task)
    optimizer = run.create(run.optimizer_config(), model.parameters())
    train = data.splits["train"].to(run.device)
    size, _ = settings.batch_bounds(len(train))
    rows_per_step = max(1, min(size, len(train)) // run.distributed.world_size)
    run.threads = choose_threads(model, run.device, run.config.pipeline.threads, rows_per_step, run.distributed.local_world_size)
    plan = TrainingPlan(settings.epochs, settings.steps_per_epoch(len(train)))
    schedule = run.create(settings.scheduler, optimizer, plan) if settings.scheduler else None
    _check_watched(schedule, settings)
    validate = _validation(run, evaluator, settings)

    def on_epoch_end(epoch: int, row: dict[str, float]) -> None:
        if run.is_main:
            run.host.hook.on_epoch_end(run=run, epoch=epoch, metrics=row)

    with batchnorm_synchronized(model, settings, run.distributed):
        trainer = Trainer(
            model, optimizer, evaluator.loss_fn, train, settings, data.spec.task, run.config.pipeline.seed, device=run.device,
            schedule=schedule, validate=validate, on_epoch_end=on_epoch_end, checkpoint=_saver(run, settings) if run.is_main and run.checkpoints else None,
            distributed=run.distributed,
        )
        trainer.resume(*_checkpoint_to_resume(run))
        run.history = trainer.history
        try:
            with stop_on_signals() as stop:
                return trainer.fit(stop)
        except torch.cuda.OutOfMemoryError:
            raise RunFailed(
                f"CUDA ran out of memory training with batch_size {size}; try batch_size = {max(1, size // 2)} "
                f"(with accumulate_batches = {2 * settings.accumulate_batches} to keep the effective batch size)"
            ) from None


def _check_watched(schedule: LRSchedule | None, settings: TrainSection) -> None:
    """A plateau scheduler reads its column every epoch: not a val_ column left out of most of them."""
    watched = schedule.monitor if schedule is not None else None
    if watched and watched.startswith(VALIDATION_PREFIX) and settings.validate_every > 1 and settings.scheduler is not None:
        raise ConfigError(
            f"train.scheduler {settings.scheduler.name!r} watches {watched!r} every epoch, "
            f"but train.validate_every = {settings.validate_every} scores the validation split only every {settings.validate_every} "
            "epochs: set validate_every = 1, or have the scheduler watch a training column such as 'train_loss'"
        )


def _validation(run: RunContext, evaluator: Evaluator, settings: TrainSection) -> Any:
    """Scores of the validation split for each history row (``None`` without one)."""
    validation = run.require_data("train").splits.get("validation")
    stopping = settings.early_stopping
    if stopping is not None and stopping.monitor.startswith("val_") and validation is None:
        raise ConfigError(
            f"train.early_stopping.monitor is {stopping.monitor!r} but the data has no validation split; "
            "set a validation fraction (e.g. data.val_size = 0.2) or monitor a training column such as 'train_loss'"
        )
    if validation is None:
        return None
    split = validation.to(run.device)
    matrices: set[str] = set()  # metrics that answered a matrix: no history column, so not computed again

    def validate(model: nn.Module) -> dict[str, float]:
        values = evaluator(model, split, skip=matrices)
        matrices.update(name for name, value in values.items() if isinstance(value, list))
        return scalars(values)

    return validate


def _saver(run: RunContext, settings: TrainSection) -> Any:
    """Writes a checkpoint of this run (with its config hash) and names it relative to the run folder."""

    def save(payload: dict[str, Any]) -> str:
        path = checkpoint.save(run.run_dir, {**payload, "config_sha256": run.config.sha256()}, settings.keep_checkpoints)
        return str(path.relative_to(run.run_dir))

    return save


def _checkpoint_to_resume(run: RunContext) -> tuple[dict[str, Any] | None, str]:
    """The payload of the run's newest checkpoint that verifies (read by rank 0, sent to every rank)
    and its name; a newer, damaged one is set aside, and the person told (standard error)."""
    found = checkpoint.find(run.run_dir) if run.resuming and run.is_main else None
    if found is not None and found.skipped:
        print(f"warning: {found.note()}", file=sys.stderr)
        checkpoint.set_aside(found)
    latest = found.path if found is not None else None
    payload = checkpoint.load(latest) if latest is not None else None
    if payload is not None and payload.get("config_sha256") != run.config.sha256():
        raise ConfigError(f"{latest} was written by a different configuration; start a new run instead of resuming")
    return run.distributed.broadcast(payload), str(latest.relative_to(run.run_dir)) if latest else NONE_YET
