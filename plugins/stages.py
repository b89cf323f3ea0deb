"""The default stages load_data → build_model → train → evaluate (export: :mod:`plugins.export_stage`).

They are ordinary plugins on ``register_stages``; a pipeline file may reorder them, drop them, or add
stages of its own between them.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pipeline_core import (
    ConfigError,
    DataBundle,
    DatasetContext,
    PipelineError,
    Register,
    RunContext,
    RunFailed,
    TrainingPlan,
    checkpoint,
    hookimpl,
)
from pipeline_core.artifacts import RunFiles, atomic_write, write_csv, write_json
from pipeline_core.config import ComponentConfig
from pipeline_core.distributed import synchronized_batchnorm
from pipeline_core.evaluation import compute_metrics, scalars
from pipeline_core.results import TrainingSummary
from pipeline_core.signals import stop_on_signals
from pipeline_core.training.trainer import EarlyStopping, LoopSettings, Trainer, choose_threads

DEFAULT_METRICS = {
    "multiclass": ("loss", "accuracy", "f1", "confusion_matrix"),
    "binary": ("loss", "accuracy", "f1", "confusion_matrix"),
    "regression": ("loss", "mse", "mae", "r2"),
}


def load_data(run: RunContext) -> None:
    """Call the configured dataset loader with the run's seed."""
    assert run.config.data is not None  # the config requires [data] when this stage is listed
    bundle = run.create(run.config.data, DatasetContext(run.config.pipeline.seed, run.config.root))
    if not isinstance(bundle, DataBundle):
        raise PipelineError(f"dataset {run.config.data.name!r} returned {type(bundle).__name__}, not a DataBundle")
    run.data = bundle


def build_model(run: RunContext) -> None:
    """Build the configured model from the data spec, behind the data's preprocessing."""
    assert run.config.model is not None
    data = run.require_data("build_model")
    network = run.create(run.config.model, data.spec)
    if not isinstance(network, nn.Module):
        raise PipelineError(f"model {run.config.model.name!r} returned {type(network).__name__}, not an nn.Module")
    run.model = nn.Sequential(OrderedDict(preprocess=data.preprocess, network=network)).to(run.device)


def _loss(run: RunContext) -> Any:
    if run.config.train is None:
        return None
    loss = run.create(run.config.train.loss)
    return loss.to(run.device) if isinstance(loss, nn.Module) else loss


def _metrics(run: RunContext, data: DataBundle) -> list[ComponentConfig]:
    chosen = run.config.evaluate.metrics
    return chosen if chosen else [ComponentConfig("metric", name) for name in DEFAULT_METRICS[data.spec.task]]


MAXIMIZED = ("accuracy", "f1", "precision", "recall", "r2")


def _early_stopping(run: RunContext, has_validation: bool) -> EarlyStopping | None:
    chosen = run.config.train.early_stopping  # type: ignore[union-attr]
    if chosen is None:
        return None
    if chosen.monitor.startswith("val_") and not has_validation:
        raise ConfigError(
            f"train.early_stopping.monitor is {chosen.monitor!r} but the data has no validation split; "
            "set a validation fraction (e.g. data.val_size = 0.2) or monitor a training column such as 'train_loss'"
        )
    mode = chosen.mode if chosen.mode != "auto" else ("max" if any(m in chosen.monitor for m in MAXIMIZED) else "min")
    return EarlyStopping(chosen.monitor, mode, chosen.patience, chosen.min_delta, chosen.restore_best)


def _forward(run: RunContext, model: nn.Module) -> Any:
    """What the training loop calls: the model, wrapped in DDP across processes, compiled on request."""
    settings = run.config.train
    assert settings is not None
    if settings.precision == "fp16" and run.device.type != "cuda":
        raise ConfigError(f"train.precision 'fp16' needs a CUDA device (the run is on {run.device}); use '32' or 'bf16'")
    forward: Any = model
    if run.distributed.enabled:
        forward = DistributedDataParallel(model, device_ids=[run.device.index] if run.device.type == "cuda" else None)
    if settings.compile:
        forward = torch.compile(forward, backend=settings.compile_backend)
    return forward


def _checkpoint_to_resume(run: RunContext) -> tuple[dict[str, Any] | None, str]:
    """The payload of the run's last checkpoint (read by rank 0, sent to every rank) and its path."""
    latest = checkpoint.latest(run.run_dir) if run.resuming and run.is_main else None
    payload = checkpoint.load(latest) if latest is not None else None
    if payload is not None and payload.get("config_sha256") != run.config.sha256():
        raise ConfigError(f"{latest} was written by a different configuration; start a new run instead of resuming")
    return run.distributed.broadcast(payload), str(latest.relative_to(run.run_dir)) if latest else "none yet"


def train(run: RunContext) -> None:
    """Fit the model on the train split: validation each epoch, checkpoints, resumable, signal-safe."""
    settings = run.config.train
    assert settings is not None
    data, model = run.require_data("train"), run.require_model("train")
    loss_fn = _loss(run)
    optimizer = run.create(settings.optimizer, model.parameters())
    train_split = data.splits["train"].to(run.device)
    batch = None if settings.batch_size == "full" else settings.batch_size
    loop = LoopSettings(
        settings.epochs, batch, settings.shuffle, settings.drop_last, settings.accumulate_batches,
        settings.clip_grad_norm, settings.precision,
    )
    rows_per_step = min(batch or len(train_split), len(train_split)) // run.distributed.world_size
    run.threads = choose_threads(model, run.device, run.config.pipeline.threads, max(1, rows_per_step), run.distributed.local_world_size)
    plan = TrainingPlan(settings.epochs, loop.steps_per_epoch(len(train_split)))
    schedule = run.create(settings.scheduler, optimizer, plan) if settings.scheduler else None
    validation = data.splits.get("validation")
    validate = None
    if validation is not None:
        validation, metrics, registry = validation.to(run.device), _metrics(run, data), run.host.registry

        def validate(current: nn.Module) -> dict[str, float]:
            return scalars(compute_metrics(registry, metrics, current, validation, data.spec.task, loss_fn))

    def save(payload: dict[str, Any]) -> str:
        path = checkpoint.save(run.run_dir, {**payload, "config_sha256": run.config.sha256()}, settings.keep_checkpoints)
        return str(path.relative_to(run.run_dir))

    def on_epoch_end(epoch: int, row: dict[str, float]) -> None:
        if run.is_main:
            run.host.hook.on_epoch_end(run=run, epoch=epoch, metrics=row)

    synchronized = synchronized_batchnorm(model) if settings.sync_batchnorm and run.distributed.enabled else nullcontext()
    with synchronized:
        trainer = Trainer(
            model, optimizer, loss_fn, train_split, loop, data.spec.task, torch.Generator().manual_seed(run.config.pipeline.seed),
            forward=_forward(run, model), schedule=schedule, validate=validate,
            early_stopping=_early_stopping(run, validation is not None), on_epoch_end=on_epoch_end,
            checkpoint=save if run.is_main else None, checkpoint_every=settings.checkpoint_every,
            checkpoint_seconds=settings.checkpoint_seconds, distributed=run.distributed,
        )
        payload, trainer.last_checkpoint = _checkpoint_to_resume(run)
        if payload is not None:
            trainer.load_state_dict(payload)
        run.history = trainer.state.history
        try:
            with stop_on_signals() as stop:
                trainer.stop = stop
                state = trainer.fit()
        except torch.cuda.OutOfMemoryError:
            size = batch or len(train_split)
            raise RunFailed(
                f"CUDA ran out of memory training with batch_size {size}; try batch_size = {max(1, size // 2)} "
                f"(with accumulate_batches = {2 * settings.accumulate_batches} to keep the effective batch size)"
            ) from None
        finally:
            if run.history and run.is_main:
                write_csv(run.path(RunFiles.HISTORY), run.history)
    stopping = settings.early_stopping
    run.training = TrainingSummary(
        settings.epochs, state.epoch, state.step, state.stopped_early, state.best_epoch,
        stopping.monitor if stopping else "", payload is not None,
    )
    if run.is_main:
        atomic_write(run.path(RunFiles.WEIGHTS), lambda temp: torch.save(model.state_dict(), temp))
        write_json(run.path(RunFiles.TRAINING), run.training.as_dict())


def evaluate(run: RunContext) -> None:
    """Compute the configured metrics on every split; the test split is the headline."""
    data, model = run.require_data("evaluate"), run.require_model("evaluate")
    split_name = run.config.evaluate.split
    if split_name not in data.splits:
        raise PipelineError(f"evaluate.split is {split_name!r} but the data has splits {sorted(data.splits)}")
    loss_fn, metrics = _loss(run), _metrics(run, data)
    ordered = [split_name] + [name for name in ("train", "validation", "test") if name in data.splits and name != split_name]
    for name in ordered:
        split = data.splits[name].to(run.device)
        run.metrics[name] = compute_metrics(run.host.registry, metrics, model, split, data.spec.task, loss_fn)
    write_json(run.path(RunFiles.METRICS), run.metrics)


@hookimpl
def register_stages(register: Register) -> None:
    register("load_data", load_data)
    register("build_model", build_model)
    register("train", train)
    register("evaluate", evaluate)
