"""The default stages load_data → build_model → train → evaluate (export: :mod:`plugins.export_stage`).

They are ordinary plugins on ``register_stages``; a pipeline file may reorder them, drop them, or add
stages of its own between them.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from pipeline_core import DataBundle, DatasetContext, PipelineError, Register, RunContext, hookimpl
from pipeline_core.artifacts import atomic_write, write_csv, write_json
from pipeline_core.config import ComponentConfig
from pipeline_core.evaluation import compute_metrics, scalars
from pipeline_core.training import LoopSettings, choose_threads, fit

DEFAULT_METRICS = {
    "multiclass": ("loss", "accuracy", "f1", "confusion_matrix"),
    "binary": ("loss", "accuracy", "f1", "confusion_matrix"),
    "regression": ("loss", "mse", "mae", "r2"),
}
WEIGHTS = "weights.pt"


def load_data(run: RunContext) -> None:
    """Call the configured dataset loader with the run's seed."""
    assert run.config.data is not None  # the config requires [data] when this stage is listed
    bundle = run.create(run.config.data, DatasetContext(run.config.pipeline.seed, run.config.source.parent))
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


def train(run: RunContext) -> None:
    """Fit the model on the train split; validate each epoch when there is a validation split."""
    settings_config = run.config.train
    assert settings_config is not None
    data, model = run.require_data("train"), run.require_model("train")
    loss_fn = _loss(run)
    optimizer = run.create(settings_config.optimizer, model.parameters())
    train_split = data.splits["train"].to(run.device)
    batch = settings_config.batch_size
    rows_per_step = len(train_split) if batch == "full" else min(batch, len(train_split))
    run.state["threads"] = choose_threads(model, run.device, run.config.pipeline.threads, rows_per_step)
    validation = data.splits.get("validation")
    metrics = _metrics(run, data)
    validate = None
    if validation is not None:
        validation = validation.to(run.device)
        registry = run.host.registry

        def validate(current: nn.Module) -> dict[str, float]:
            return scalars(compute_metrics(registry, metrics, current, validation, data.spec.task, loss_fn))

    def on_epoch_end(epoch: int, row: dict[str, float]) -> None:
        run.history.append(row)
        run.host.hook.on_epoch_end(run=run, epoch=epoch, metrics=row)

    settings = LoopSettings(
        settings_config.epochs, None if batch == "full" else batch, settings_config.shuffle, settings_config.drop_last
    )
    generator = torch.Generator().manual_seed(run.config.pipeline.seed)
    try:
        fit(model, optimizer, loss_fn, train_split, settings, data.spec.task, generator, on_epoch_end, validate)
    finally:
        if run.history:
            write_csv(run.path("history.csv"), run.history)
    atomic_write(run.path(WEIGHTS), lambda temp: torch.save(model.state_dict(), temp))


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
    write_json(run.path("metrics.json"), run.metrics)


@hookimpl
def register_stages(register: Register) -> None:
    register("load_data", load_data)
    register("build_model", build_model)
    register("train", train)
    register("evaluate", evaluate)
